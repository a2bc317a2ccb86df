#!/usr/bin/env python3
"""Export an ImageNet backbone to ONNX with chosen stages as named outputs, for hgad.

    # timm (the HGAD authors' backbone: stage 3 of tf_efficientnet_b6 = stride 16, 200 channels)
    python3 scripts/export_backbone.py --model tf_efficientnet_b6 --stages 3 --out effb6.onnx
    # torchvision: module names as stages
    python3 scripts/export_backbone.py --model torchvision:wide_resnet50_2 --stages layer2,layer3 --out wrn50.onnx

The model takes `input`: float32 [N, 3, H, W], RGB scaled to [0, 1] then normalised with ImageNet mean/std
(hgad does this in the graph), with N, H and W dynamic. The stage outputs are graph outputs named
`stage<i>` (timm) or after the module (torchvision); the script prints them as the taps to give hgad.
Needs PyTorch and timm or torchvision; `--no-pretrained` exports random weights (for tests).
"""
import argparse
import json
import sys


def build_timm(name, stages, pretrained):
    import timm

    model = timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=tuple(int(s) for s in stages))
    names = [f"stage{s}" for s in stages]
    return model, names


def build_torchvision(name, stages, pretrained):
    import torchvision
    from torchvision.models.feature_extraction import create_feature_extractor

    weights = "DEFAULT" if pretrained else None
    model = torchvision.models.get_model(name, weights=weights)
    extractor = create_feature_extractor(model, return_nodes={s: s for s in stages})
    import torch

    class Ordered(torch.nn.Module):
        """Returns the stages as a tuple in the order asked (ONNX outputs are positional)."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner(x)
            return tuple(out[s] for s in stages)

    return Ordered(extractor), [s.replace(".", "_") for s in stages]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="timm model name, or torchvision:<name>")
    p.add_argument("--stages", required=True, help="comma-separated: timm feature indices (e.g. 2,3) or torchvision module names (layer2,layer3)")
    p.add_argument("--out", required=True, help="output .onnx path")
    p.add_argument("--size", type=int, default=256, help="input size of the trace (any size runs afterwards)")
    p.add_argument("--opset", type=int, default=13)
    p.add_argument("--no-pretrained", action="store_true", help="random weights (tests); default downloads the pretrained weights")
    args = p.parse_args(argv)

    try:
        import torch
    except ImportError:
        sys.exit("export_backbone.py needs PyTorch (pip install torch, or apt-get install python3-torch)")

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    if not stages:
        sys.exit("--stages: give at least one stage")
    pretrained = not args.no_pretrained
    try:
        if args.model.startswith("torchvision:"):
            model, names = build_torchvision(args.model.split(":", 1)[1], stages, pretrained)
        else:
            model, names = build_timm(args.model, stages, pretrained)
    except ImportError as e:
        sys.exit(f"export_backbone.py: {e.name} is not installed ({e})")
    model.eval()

    x = torch.zeros(1, 3, args.size, args.size)
    with torch.no_grad():
        outs = model(x)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    dynamic = {"input": {0: "batch", 2: "height", 3: "width"}}
    for n in names:
        dynamic[n] = {0: "batch", 2: f"{n}_height", 3: f"{n}_width"}
    torch.onnx.export(model, x, args.out, input_names=["input"], output_names=names, dynamic_axes=dynamic,
                      opset_version=args.opset, do_constant_folding=True)

    info = [{"tap": n, "channels": int(o.shape[1]), "stride": args.size / int(o.shape[2])} for n, o in zip(names, outs)]
    for i in info:
        print(f"tap {i['tap']}: {i['channels']} channels, stride {i['stride']:g}")
    print("taps: " + ",".join(names))
    print("json: " + json.dumps({"model": args.out, "taps": names, "levels": info}))


if __name__ == "__main__":
    main()
