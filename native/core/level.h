// One level of the model: K coupling blocks, the hierarchical mixture head and the Adam state, over
// one flat parameter buffer. Work is split into tiles of images x positions, processed in parallel,
// each thread with its own workspace and gradient accumulators (reduced in a fixed order, so results
// do not depend on scheduling).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "adam.h"
#include "coupling.h"
#include "mixture.h"
#include "packed_gemm.h"

namespace hgad {

// The latent prior (HGAD.md section 4): the hierarchical mixture; one standard normal N(0, I) for every
// class (the classic flow: all centres and class logits frozen at 0, M = 1); or the inter-class
// mixture alone (M = 1; the caller trains it with the phase-1 losses throughout).
enum Prior { kPriorHgad = 0, kPriorSingleGaussian = 1, kPriorInterOnly = 2 };

struct LevelConfig {
  int64_t channels = 0, pos_dim = 256, blocks = 12, classes = 1, centres = 10;
  double clamp = 1.9;
  int prior = kPriorHgad;
};

enum ParamGroup { kGroupFlow = 0, kGroupCentres = 1, kGroupLogits = 2, kGroupFixed = 3 };

struct TensorSpec {
  std::string name;  // relative to the level: "blocks.3.w1", "mu", ...
  std::vector<int64_t> shape;
  int64_t offset;    // into params() (trainable) or rotations() (fixed)
  int64_t size;
  ParamGroup group;
};

struct FeatureShape {
  int64_t batch, height, width;
  int64_t positions() const { return height * width; }
  int64_t vectors() const { return batch * height * width; }
};

struct Labels {
  const int32_t* data;
  bool per_vector;  // else one label per image
};

struct Losses {
  double term[kNumTerms];
  double total;
};

// An argument the caller got wrong: `parameter` names it; index >= 0 points at a bad element.
struct InputError {
  std::string parameter, message;
  int64_t index = -1;
  bool non_finite = false;
};

// Where every tensor of a level with this config sits, and the flat sizes (elements) of its trainable
// and fixed buffers, computed without allocating them (the tensors a model file must hold, and the
// memory a config needs, are known before anything is built).
struct LevelLayout {
  std::vector<TensorSpec> specs;
  std::vector<int64_t> block_offset;  // per block: w1 offset in the trainable buffer
  int64_t params = 0, rotations = 0;
  int64_t flow_end = 0, mu_off = 0, delta_off = 0, centres_end = 0, phi_off = 0, psi_off = 0;
};
LevelLayout level_layout(const LevelConfig& cfg);

// Bytes a float Level with this config holds once it has run training and inference on `threads`
// threads: parameters, gradients and both Adam moments, rotations, packed weights, derived centres,
// position cache and per-thread workspaces. An estimate (within a few percent for the shapes used),
// computed in floating point so that no config can overflow it.
double level_footprint_bytes(const LevelConfig& cfg, int threads);

template <typename T>
struct Workspace;
struct Tile;

template <typename T>
class Level {
 public:
  // initialise = false leaves every tensor zero (a model file fills them): no random rotations to
  // build, so a loaded model costs its allocation only.
  Level(const LevelConfig& cfg, uint64_t seed, bool initialise = true);
  ~Level();
  Level(const Level&) = delete;
  Level& operator=(const Level&) = delete;

  const LevelConfig& config() const { return cfg_; }
  const std::vector<TensorSpec>& tensors() const { return specs_; }
  const TensorSpec* find(const std::string& name) const;
  // Mutable access to parameters invalidates what was derived from them (caches, packed weights);
  // reading through a const Level does not.
  T* data(const TensorSpec& s) {
    ++version_;
    return (s.group == kGroupFixed ? rot_.data() : params_.data()) + s.offset;
  }
  const T* data(const TensorSpec& s) const {
    return (s.group == kGroupFixed ? rot_.data() : params_.data()) + s.offset;
  }
  T* grad(const TensorSpec& s) { return grads_.data() + s.offset; }
  T* adam_m(const TensorSpec& s) { return m_.data() + s.offset; }
  T* adam_v(const TensorSpec& s) { return v_.data() + s.offset; }
  const T* adam_m(const TensorSpec& s) const { return m_.data() + s.offset; }
  const T* adam_v(const TensorSpec& s) const { return v_.data() + s.offset; }
  const AdamHyper& adam_hyper() const { return hyper_; }
  int64_t adam_steps() const { return steps_; }
  void set_adam_steps(int64_t s) { steps_ = s; }
  int64_t num_params() const { return static_cast<int64_t>(params_.size()); }
  std::vector<T>& params() {
    ++version_;
    return params_;
  }
  std::vector<T>& grads() { return grads_; }

  int64_t tile_rows = 512;  // measured: 512-1024 rows keep the GEMMs efficient (256: -12%)
  // GEMM precision (float levels only): bf16 inputs with float accumulation for inference (forward,
  // inverse, score) and for training (mixed precision: parameters, gradients and Adam state stay
  // float). The caller decides from the CPU's features (cpu_features.h); the mixture's distances
  // always stay float (|z|^2 - 2 z.c + |c|^2 cancels).
  bool bf16_inference = false;
  bool bf16_training = false;

  void forward(const FeatureShape& fs, const T* x, T* z, T* logdet, int threads);
  void inverse(const FeatureShape& fs, const T* z, T* x, int threads);
  // image_class: one class per image, or null to infer it from the mean class logits of the image.
  // class_posterior (nullable, batch x Y): the mean over an image's positions of softmax(class logits),
  // a bounded measure of how confidently the image belongs to each class.
  // with_logdet false: logp leaves out the flow's log|det J| (the latent density alone, per channel);
  // class logits and negative entropy do not depend on it.
  void score(const FeatureShape& fs, const T* x, const int32_t* image_class, T* logp, T* neg_entropy,
             T* class_logits, int32_t* class_out, T* class_posterior, int threads, bool with_logdet = true);
  // Loss terms and the gradient of sum_t weights[t] * term_t into grads(); dx (nullable) gets the
  // gradient w.r.t. the input. latent_logdet non-null: x holds the flow's outputs z (from forward())
  // and latent_logdet their log-dets, so only the mixture runs (the flow must be frozen, dx null).
  Losses gradients(const FeatureShape& fs, const T* x, const Labels& labels, const T* weights, T* dx,
                   int threads, const T* latent_logdet = nullptr);
  void adam_step(double lr, int threads);
  // Which parameters adam_step updates (adding classes to a trained model): the flow, and the centres
  // and logits of the classes from first_class on (first_class > 0 freezes every inter-class logit
  // phi: see adam_step). A frozen flow also skips the flow's backward pass.
  // Frozen parameters and their Adam moments stay bit for bit as they are.
  void set_trainable(bool flow, int64_t first_class);
  bool flow_trainable() const { return train_flow_; }
  int64_t first_trainable_class() const { return first_class_; }

  static void phase_weights(int phase, T* weights);

 private:
  void init(uint64_t seed);
  void prepare();
  // with_packed: include the packed weights (inference, float) when they are current.
  BlockParams<T> block(int64_t k, bool with_packed = false) const;
  void pack_weights();
  void ensure_workspaces(int threads, bool train);
  // The position tables of every block for an H x W map (coupling.h PositionTable), kept while the
  // parameters do not change: K (H + W) hid values, where a table of q for every position would be
  // K H W hid (140 MB for a 64 x 64 map at the paper's size, which is why such maps were slow).
  // Training rebuilds them every step (rebuild): prepare() rederives everything else each call too,
  // so a caller that writes parameters through a pointer it kept is never served stale tables; the
  // cost is (H + W) rows per block against H * W * batch rows of flow work.
  void position_tables(int64_t H, int64_t W, bool rebuild = false);
  PositionTable<T> position_table(int64_t k, int64_t p0) const;
  // Common start of forward, inverse and score: derived parameters, workspaces, position tables and
  // packed weights.
  void begin_inference(const FeatureShape& fs, int threads);
  // Gathers one tile of x and runs the K blocks forward; returns the latent rows, log-dets in w.ld.
  T* flow_tile(Workspace<T>& w, const Tile& tile, int64_t HW, const T* x) const;
  // Forward, loss and backward of one tile; parameter gradients accumulate into gp, the mixture's
  // into the workspace.
  void train_tile(Workspace<T>& w, const Tile& tile, int64_t HW, const T* x, const Labels& labels,
                  const T* weights, T scale, T* gp, T* dx, const T* latent_logdet) const;

  LevelConfig cfg_;
  BlockDims dims_;
  std::vector<TensorSpec> specs_;
  std::vector<int64_t> block_offset_;  // per block: w1 offset in params_
  int64_t mu_off_ = 0, delta_off_ = 0, phi_off_ = 0, psi_off_ = 0, flow_end_ = 0, centres_end_ = 0;
  std::vector<T> params_, grads_, m_, v_, rot_;
  int64_t steps_ = 0;
  AdamHyper hyper_;
  bool train_flow_ = true;
  int64_t first_class_ = 0;

  // Derived from the parameters by prepare() before each operation.
  std::vector<T> g_, logdet_g_, centres_, cnorm_, logpi_, logpi_intra_;
  std::vector<std::unique_ptr<Workspace<T>>> ws_;
  std::vector<T> logp_all_;
  uint64_t version_ = 0;
  std::vector<T> ptab_;     // per block: row [H, hid], then col [W, hid]
  std::vector<T> ptab_pe_;  // the encodings the tables were built from: rows [H, P], then columns [W, P]
  int64_t ptab_h_ = -1, ptab_w_ = -1;
  uint64_t ptab_version_ = 0;
  std::vector<PackedBlock> packed_;
  uint64_t packed_version_ = 0;
  bool packed_current_ = false;
  bool packed_bf16_ = false;
};

}  // namespace hgad
