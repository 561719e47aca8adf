"""`ship`, `ensemble`, `export` and `sample`: model files to ship, combine or export, and a synthetic dataset."""

from __future__ import annotations

from fer.cli.common import UsageError, add_data, add_model


def cmd_ship(args) -> int:
    from fer.release import ship, ship_dual, ship_ensemble, ship_ferplus

    where = {"models_dir": args.models_dir} if args.models_dir else {}
    several = {**where, "hardware": args.hardware, "selection": args.selection or ""}
    if args.dual:
        if len(args.run) != 1:
            raise UsageError("--dual ships one run (a dual-head network)")
        metrics = ship_dual(
            args.run[0], args.data, name=args.name or "fer_dual", prior_table=args.prior_table, **several
        )
        fp, f13 = metrics["ferplus"], metrics["fer2013"]
        print(
            f"Shipped {metrics['model_file']} (dual head): FER+ majority {fp['accuracy']:.4f} (TTA "
            f"{fp['accuracy_tta']:.4f}), FER-2013 labels {f13['accuracy']:.4f} (TTA {f13['accuracy_tta']:.4f}), "
            f"{metrics['cpu_faces_per_second']:,} faces/s; card written next to it"
        )
        return 0
    if args.ferplus:
        metrics = ship_ferplus(args.run, args.data, name=args.name or "ferplus", include=args.include or (), **several)
        fp = metrics["ferplus"]
        print(
            f"Shipped {metrics['model_file']} (FER+, {len(args.run)} run(s)): FER+ majority accuracy "
            f"{fp['accuracy']:.4f} (TTA {fp['accuracy_tta']:.4f}), crowd agreement {fp['crowd_agreement']:.4f}; "
            f"FER-2013 labels {metrics['fer2013']['accuracy']:.4f}; card written next to it"
        )
        return 0
    if len(args.run) > 1:
        metrics = ship_ensemble(args.run, args.data, name=args.name or "fer_ensemble", **several)
        print(
            f"Shipped the ensemble of {len(args.run)} runs as {metrics['model_file']}: accuracy "
            f"{metrics['accuracy']:.4f} (TTA {metrics['accuracy_tta']:.4f}), macro-F1 {metrics['macro_f1']:.4f}, "
            f"{metrics['cpu_faces_per_second']:,} faces/s; card written next to it"
        )
        return 0
    (args.run,) = args.run
    metrics = ship(args.run, args.data, **where, hardware=args.hardware)
    print(
        f"Shipped {args.run}/{metrics['checkpoint']}: accuracy {metrics['accuracy']:.4f} "
        f"(TTA {metrics['accuracy_tta']:.4f}), "
        f"macro-F1 {metrics['macro_f1']:.4f}; card written next to the model"
    )
    return 0


def add_ship(sub) -> None:
    """The `ship` subcommand's arguments."""
    p = sub.add_parser(
        "ship",
        help="export a run into models/ (or several as an ensemble) with its ONNX twins, evaluated once, and its card "
        "(which model is the default is decided apart: fer.release.package_default)",
    )
    p.add_argument(
        "--run",
        required=True,
        nargs="+",
        help="run folder with config.json, history.csv and its model; several: ship them as an ensemble",
    )
    p.add_argument(
        "--ferplus",
        action="store_true",
        help="FER+ runs (labels ferplus_*): ship as models/ferplus.keras (several runs: ferplus.json), scored "
        "against the FER+ crowd majority and FER-2013's labels",
    )
    p.add_argument(
        "--dual",
        action="store_true",
        help="a dual-head run (labels dual): ship as models/fer_dual.keras with its ONNX twins, scored through each "
        "head on its own label set",
    )
    p.add_argument("--prior-table", help="with --dual: benchmarks/eval_label_sets.py's CSV with --prior rows")
    p.add_argument(
        "--include",
        nargs="+",
        metavar="MODEL",
        help="with --ferplus: models/ files to average in (e.g. the FER-2013 network fer_emotion.keras)",
    )
    p.add_argument("--name", help="the name in models/ (default: fer_ensemble for an ensemble, ferplus with --ferplus)")
    p.add_argument("--selection", help="an ensemble: how its members were chosen (for the card)")
    add_data(p, "dataset whose test split is reported")
    p.add_argument("--models-dir", help="default: the repository's models/")
    p.add_argument("--hardware", help="where it was trained, for the card (default: this machine)")
    p.set_defaults(func=cmd_ship)


def cmd_ensemble(args) -> int:
    from fer.modeling.ensembling import ensemble

    model = ensemble(args.members, args.out)
    print(f"Wrote {args.out}: the mean of {len(args.members)} models ({model.count_params():,} parameters)")
    return 0


def add_ensemble(sub) -> None:
    """The `ensemble` subcommand's arguments."""
    p = sub.add_parser("ensemble", help="one .keras model that averages the probabilities of several models")
    p.add_argument("members", nargs="+", help="two or more .keras emotion models")
    p.add_argument("--out", required=True, help="the ensemble's .keras file")
    p.set_defaults(func=cmd_ensemble)


def cmd_export(args) -> int:
    from fer.release.exporting import export, write_twin

    if args.twin:
        if args.format != "onnx" or args.quantize == "float16":
            raise UsageError("--twin writes the ONNX twin that inference runs: float32, or int8 with --quantize int8")
        out = write_twin(args.model, "int8" if args.quantize == "int8" else "float32", data=args.data)
        int8 = args.quantize == "int8"
        how = "with --engine int8 (or FER_ENGINE=int8)" if int8 else "instead of the Keras model"
        print(f"Wrote {out}, the ONNX twin that predict_emotion and `predict` run {how}")
        return 0
    quantize = None if args.quantize == "none" else args.quantize
    out = export(args.model, args.format, args.out, quantize=quantize, data=args.data)
    print(f"Wrote {out} and {out.with_suffix('.json').name if out.suffix else out.name + '.json'} beside it")
    return 0


def add_export(sub) -> None:
    """The `export` subcommand's arguments."""
    p = sub.add_parser("export", help="write a model as ONNX (float32, float16, int8), LiteRT or SavedModel")
    add_model(p)
    p.add_argument("--format", default="onnx", choices=["onnx", "litert", "saved_model"])
    p.add_argument("--quantize", default="none", choices=["none", "float16", "int8"], help="ONNX only")
    p.add_argument("--out", default="exported", help="output folder (default: exported/)")
    p.add_argument(
        "--twin",
        action="store_true",
        help="write the model's ONNX twin beside it (onnx/<name>.onnx) that predict runs instead of Keras",
    )
    add_data(p, "int8 calibration faces: FER-2013 root")
    p.set_defaults(func=cmd_export)


def cmd_sample(args) -> int:
    from fer.data.sample import write_sample

    root = write_sample(args.out, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    print(f"Wrote a synthetic (not FER-2013!) dataset to {root}")
    return 0


def add_sample(sub) -> None:
    """The `sample` subcommand's arguments."""
    p = sub.add_parser("sample", help="write a small synthetic dataset in the FER-2013 folder layout")
    p.add_argument("--out", default="data/sample")
    p.add_argument("--n-train", type=int, default=60, help="images per class in train/")
    p.add_argument("--n-test", type=int, default=20, help="images per class in test/")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_sample)
