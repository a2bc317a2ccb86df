/** ImageNet channel statistics (RGB, on 0..1 pixels): the input normalisation of the presets. */
export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];
