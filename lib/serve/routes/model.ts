// GET /v1/model: what the server scores with (classes, thresholds, class flows, backbone, map size, limits).
import * as path from 'node:path';

import type { FastifyPluginAsync } from 'fastify';

import type { ServiceState } from '../state';

export const modelRoute: FastifyPluginAsync<{ state: ServiceState }> = async (app, { state }) => {
  app.get('/v1/model', async () => {
    const { detector, options } = state;
    const spec = detector.spec;
    const backbone = spec.backbone;
    return {
      hgad: state.version,
      classes: detector.classes,
      thresholds: spec.calibration?.thresholds ?? null,
      // classes added to the detector whose maps come from a flow of their own, and thresholds measured before a later change
      classFlows: (spec.classFlows ?? []).map((f) => ({ className: f.className, couplingLayers: f.couplingLayers })),
      staleThresholds: spec.staleThresholds ?? [],
      calibration: spec.calibration ? { images: spec.calibration.images, quantile: spec.calibration.quantile } : null,
      prior: detector.model.config.prior,
      backbone: {
        // a preset's name, or the file's name only: the server's paths are its own business
        model: path.basename(backbone.model), sha256: backbone.sha256, taps: backbone.taps, scales: backbone.scales, inputSize: backbone.inputSize,
      },
      levels: detector.model.config.levels.map((l) => l.channels),
      mapSize: detector.mapSize,
      limits: {
        batchSize: options.batchSize, batching: options.batching, maxWaitMs: options.maxWaitMs, maxQueue: options.maxQueue,
        bodyLimit: options.bodyLimit, maxImages: options.maxImages, maxPixels: options.maxPixels, timeoutMs: options.timeoutMs,
      },
    };
  });
};
