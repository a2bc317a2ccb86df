{
  "targets": [
    {
      "target_name": "hgad",
      "sources": [
        "native/binding/addon.cpp",
        "native/core/adam.cpp",
        "native/core/bf16_gemm.cpp",
        "native/core/colormap.cpp",
        "native/core/components.cpp",
        "native/core/coupling.cpp",
        "native/core/cpu_features.cpp",
        "native/core/gemm.cpp",
        "native/core/gemm_peak.cpp",
        "native/core/level.cpp",
        "native/core/level_inference.cpp",
        "native/core/level_training.cpp",
        "native/core/maps.cpp",
        "native/core/metrics.cpp",
        "native/core/mixture.cpp",
        "native/core/model.cpp",
        "native/core/nearest.cpp",
        "native/core/packed_gemm.cpp",
        "native/core/projection.cpp",
        "native/core/rng.cpp",
        "native/core/state_checks.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-trapping-math", "-fopenmp", "-fexceptions", "-Wall", "-Wextra"],
      "libraries": ["-ldnnl", "-fopenmp"]
    }
  ]
}
