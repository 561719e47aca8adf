"""`evaluate`: scoring a model on a labelled split."""

from __future__ import annotations

from fer.cli.common import add_answer, add_data, add_engine, add_model, add_tta


def cmd_evaluate(args) -> int:
    from fer.analysis.evaluation import evaluate  # the research extra (scikit-learn): said first
    from fer.analysis.probabilities import classes_of
    from fer.data.loading import data_dir, load_split, train_images_beside
    from fer.inference.models import load_model
    from fer.modeling.files import default_model_path

    data = data_dir(args.data)
    if args.votes:  # FER+: the crowd's majority label is the truth, contempt included
        from fer.data.ferplus import load_ferplus_split

        faces = load_ferplus_split(data, args.split, args.votes)
    else:
        faces = load_split(data, args.split)
    model = load_model(args.model, engine=args.engine)
    classes_of(model, args.labels)  # --labels naming a head the model lacks: a usage error (exit 2) up front

    train_images = None if args.no_dedup else train_images_beside(data, args.split)
    result = evaluate(
        model,
        faces.images,
        faces.labels,
        tta=args.tta,
        train_images=train_images,
        classes=faces.classes,
        votes=faces.votes,
        head=args.labels,
        prior=args.prior,
    )
    if args.json:
        print(result.to_json())
        return 0
    print(f"model: {args.model or default_model_path()}")
    labels = f"FER+ majority of {args.votes}" if args.votes else "the dataset's labels"
    print(f"{data} [{args.split}], {labels}: {result.summary()}")
    print(result.per_class.round(3).to_string())
    print("\nConfusion matrix (rows: true, columns: predicted)")
    print(result.confusion.to_string())
    return 0


def add_evaluate(sub) -> None:
    """The `evaluate` subcommand's arguments."""
    p = sub.add_parser("evaluate", help="score a model on a labelled split")
    add_model(p)
    add_engine(p, "auto")
    add_data(p, "dataset root, fer2013.csv, or folder of <emotion>/ folders")
    p.add_argument("--split", default="test", help="train | test | private (default: test)")
    p.add_argument(
        "--no-dedup",
        action="store_true",
        help="skip the second figure without faces that duplicate training images (saves loading train)",
    )
    p.add_argument(
        "--votes",
        help="score against the FER+ crowd: a votes CSV (columns of data/ferplus_votes.csv, `file` relative to the "
        "dataset root); accuracy is then the FER+ majority accuracy (8 classes), with crowd agreement",
    )
    add_tta(p)
    add_answer(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_evaluate)
