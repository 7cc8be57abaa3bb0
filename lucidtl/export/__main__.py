"""`python -m lucidtl.export classifier|renderer`: SavedModels of a classifier and of a channel renderer."""
from lucidtl import cli
from lucidtl.errors import InvalidArgumentError


def _need_out(out):
    if out is None or str(out) == "":
        raise InvalidArgumentError("no output folder; pass --out DIR")
    return str(out)


def _report(result):
    print(f"wrote SavedModel to {result.path}")
    for name, text in result.signatures.items():
        print(f"  {name}{text}")


def classifier(model="inception_v1", weights=None, out=None, image_size=None, include_top=True,
               overwrite=False, run=None, checkpoint=None):
    """Export a classifier SavedModel: probabilities for [0,1] float32 or uint8 images of any size.

    Signatures serving_default (float32 images in [0, 1]) and serving_uint8 (uint8 images), both resized to
    --image-size (default: the model's input size, 224 for inception_v1), returning "probabilities" (softmax,
    or sigmoid per attribute for multi-label runs) and "outputs" (the model's own output: the same for a run,
    logits for the ImageNet InceptionV1). A run's class names are stored as the variable class_names.

    Args:
        model: inception_v1 | a .keras or .h5 file | keras.applications.X | a dotted builder
        weights: imagenet | random | a weights file; default ImageNet where available, else random
        run (run): export this training run's model (head included) at --checkpoint
        checkpoint (checkpoint): the saved iteration of --run, or last (default: last)
        out (folder): the SavedModel folder (required)
        image_size (int >= 1): side images are resized to (default: the model's input size)
        include_top (bool): keep the classification head (for a registry model)
        overwrite (bool): replace a non-empty --out
    """
    from lucidtl.export.savedmodel import SLIM_HEAD, export_classifier
    from lucidtl.loading import load_model
    from lucidtl.optvis.features import fixed_input_size

    out = _need_out(out)
    net, info = load_model(model, weights, include_top=bool(include_top), run=run, checkpoint=checkpoint)
    if image_size is None and fixed_input_size(net) is None:
        if any(layer.name == SLIM_HEAD for layer in net.layers):
            image_size = 224
    names = None
    if run is not None:
        from lucidtl.run import Run

        names = Run(run).class_names
    return export_classifier(net, out, info.input_range, image_size, overwrite, class_names=names)


def renderer(model="inception_v1", weights=None, layer="Mixed_4c", size=128, out=None, transforms="standard",
             sd=0.01, learning_rate=0.05, decorrelate=True, relu_gradient_override=True, overwrite=False, run=None,
             checkpoint=None):
    """Export a channel renderer SavedModel: render(channel, steps, seed) -> image, image_uint8, objective.

    Args:
        model: inception_v1 | a .keras or .h5 file | keras.applications.X | a dotted builder
        weights: imagenet | random | a weights file; default ImageNet where available, else random
        run (run): export a renderer of this training run's model at --checkpoint
        checkpoint (checkpoint): the saved iteration of --run, or last (default: last)
        layer: the layer whose channels it renders
        size (int in [16, 4096]): side of the rendered images in px
        out (folder): the SavedModel folder (required)
        transforms (standard|distill|none): the transformation robustness set
        sd (number > 0): standard deviation of the initial spectrum
        learning_rate (number > 0): Adam's learning rate
        decorrelate (bool): optimise in decorrelated colour space
        relu_gradient_override (bool): Lucid's redirected ReLU gradient for the first 17 steps (0..16)
        overwrite (bool): replace a non-empty --out
    """
    from lucidtl import loading
    from lucidtl.export.savedmodel import export_renderer
    from lucidtl.optvis import features

    out = _need_out(out)
    size = cli.integer("size", size, minimum=loading.MIN_SIZE)
    cli.choice("transforms", transforms, loading.TRANSFORMS)
    net, info = loading.load_model(model, weights, run=run, checkpoint=checkpoint)
    layer = str(layer)
    features.endpoint(net, layer)
    loading.check_size(net, layer, size, transforms, info.input_range)
    return export_renderer(net, layer, out, size, info.input_range, transforms, sd, learning_rate, decorrelate,
                           relu_gradient_override, overwrite)


def main(argv=None):
    cli.run({"classifier": cli.printing(classifier, _report), "renderer": cli.printing(renderer, _report)},
            default="renderer", argv=argv)


if __name__ == "__main__":
    main()
