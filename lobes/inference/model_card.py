"""The model card (``README.md`` with Hugging Face metadata) of a release.

Everything in it is read from the run (``results.json``) or measured on the
written release (sizes, parameter counts); nothing is typed by hand.
"""

import math

import yaml

from lobes.evaluation.metrics import ASVSPOOF5_COSTS

# results.json metrics shown on the card: key, label, scale.
from lobes.inference.release_loader import GOLDEN_TOLERANCE
from lobes.utils.choices import DEFAULT_CROP

CARD_METRICS = (("eer", "EER (%)"), ("min_dcf", "minDCF"), ("act_dcf", "actDCF"), ("cllr", "Cllr"))
CITATION = """@inproceedings{elkheir2025layerwise,
  title     = {Comprehensive Layer-wise Analysis of {SSL} Models for Audio Deepfake Detection},
  author    = {El Kheir, Yassine and others},
  booktitle = {Findings of the Association for Computational Linguistics: NAACL 2025},
  year      = {2025},
  note      = {arXiv:2502.03559}
}"""


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_interval(metrics, key):
    """``(low, high)`` of a metric when results.json has one (``<key>_ci`` or
    ``intervals[<key>]``), else None.

    Example
    -------
    >>> metric_interval({"eer": 5.0, "eer_ci": [4.0, 6.5]}, "eer"), metric_interval({"eer": 5.0}, "eer")
    ((4.0, 6.5), None)
    """
    interval = metrics.get(f"{key}_ci", (metrics.get("intervals") or {}).get(key))
    if isinstance(interval, dict):
        interval = (interval.get("low"), interval.get("high"))
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and all(map(_finite, interval)):
        return float(interval[0]), float(interval[1])
    return None


def _cell(metrics, key):
    value = metrics.get(key)
    if not _finite(value):
        return "-"
    interval = metric_interval(metrics, key)
    return f"{value:.4g}" + (f" [{interval[0]:.4g}, {interval[1]:.4g}]" if interval else "")


def _looks_like_hub_id(source):
    return source.count("/") == 1 and not source.startswith((".", "/", "~"))


def card_metadata(config, results, name):
    """The YAML front matter: tags, base model and a model-index of the test sets."""
    run = results.get("config", {})
    dataset = run.get("dataset", "unknown")
    metadata = {
        "license": "other",
        "library_name": "lobes",
        "pipeline_tag": "audio-classification",
        "tags": ["audio", "anti-spoofing", "audio-deepfake-detection", "speechbrain", "safetensors",
                 config["model_type"]],
    }
    if _looks_like_hub_id(config["ssl_source"]):
        metadata["base_model"] = config["ssl_source"]
    entries = []
    for set_name, metrics in (results.get("test_sets") or {}).items():
        values = [{"type": key, "name": label, "value": round(float(metrics[key]), 6)}
                  for key, label in CARD_METRICS if _finite(metrics.get(key))]
        if values:
            entries.append({
                "task": {"type": "audio-classification", "name": "Audio deepfake detection"},
                "dataset": {"name": f"{dataset} {set_name}", "type": dataset, "split": set_name},
                "metrics": values,
            })
    if entries:
        metadata["model-index"] = [{"name": name, "results": entries}]
    return metadata


def _scored_audio(config):
    """What part of a file is scored, by the crop the recipe evaluated with.

    Example
    -------
    >>> _scored_audio({"crop": {"max_samples": 64600, "eval_crop": "full"}, "sample_rate": 16000})
    'whole files scored'
    """
    crop = config["crop"]
    if crop.get("eval_crop", DEFAULT_CROP) == "full":
        return "whole files scored"
    samples = crop["max_samples"]  # "random" crops are for training: detectors score the first
    return f"first {samples} samples ({samples / config['sample_rate']:.2f} s) scored, shorter audio tiled"


def score_name(head_type):
    """What a head's raw score is (the card and the release config say it).

    Example
    -------
    >>> score_name("ffn"), score_name("frame")
    ('bona fide logit', 'pooled bona fide log-odds of the frames')
    """
    return "pooled bona fide log-odds of the frames" if head_type == "frame" else "bona fide logit"


def _length_limitation(config):
    """The card's limitation on audio length, by the crop the model scores."""
    if config["crop"].get("eval_crop", DEFAULT_CROP) == "full":
        return ("- Whole files are scored at once: memory grows with the file; long recordings are "
                "better scored with `--window` (and partially spoofed audio with `--aggregation min`).")
    return ("- One crop of about 4 s per file by default: longer audio needs `--window`; partially "
            "spoofed audio is best scored with `--aggregation min`.")


def _head_note(config):
    """What a head does that its name does not say (the frame head's pooling)."""
    head = config["head"]
    if head["type"] != "frame":
        return ""
    pooling = {"min": "minimum", "mean": "mean"}[(head.get("options") or {}).get("pooling", "min")]
    return (f" (a score per 20-ms frame; the utterance score is their {pooling}, as the PartialSpoof "
            "segment recipe trained it; the frame scores themselves are not output)")


def model_card(config, calibration, results, summary, name=None):
    """The release's ``README.md`` text."""
    run = results.get("config", {})
    dataset = run.get("dataset", "an unrecorded dataset")
    head = config["head"]["type"]
    name = name or f"{config['model_type']}-N{config['n_layers']}-{head}-{dataset}".replace("/", "-")
    front = yaml.safe_dump(card_metadata(config, results, name), sort_keys=False).strip()
    share = summary["parameters"] / summary["full_model_parameters"]
    lines = [
        "---", front, "---", "",
        f"# {name}: audio deepfake (spoofing) countermeasure", "",
        "Scores speech as **bona fide** (real) or **spoof** (synthesised or converted): a "
        f"{config['model_type']} encoder ({config['ssl_source']}) cut to its first "
        f"**{config['n_layers']} of {config['full_depth']} transformer layers**, a learned softmax-"
        f"weighted sum of those layers ({config['fusion']['norm']} normalisation) and the "
        f"**{head}** head{_head_note(config)}, trained with the lobes recipes. Only the layers used "
        "are stored.", "",
        "## Model", "",
        f"- SSL source: `{config['ssl_source']}`, depth N = {config['n_layers']} "
        f"(of {config['full_depth']}); hidden size {config['hidden_size']}",
        f"- Head: {head} {config['head']['options'] or ''}".rstrip(),
        f"- Input: mono 16 kHz (other rates are resampled); {_scored_audio(config)}, or sliding "
        "windows with `--window`",
        f"- Weights: encoder stored in {config['dtype']}, fusion and head in float32",
        f"- **Parameters: {summary['parameters']:,}**, {share:.1%} of the full model's "
        f"{summary['full_model_parameters']:,} (same head on the full-depth encoder)",
        f"- **Weight files: {summary['weight_bytes'] / 1e6:.2f} MB** (measured), against "
        f"{summary['full_model_fp32_bytes'] / 1e6:.2f} MB for the full model in float32 "
        "(4 bytes a parameter)", "",
        "## Training", "",
        f"- Data: {dataset}; seed {run.get('seed', 'unrecorded')}" + _run_kind(run),
        f"- Epochs: {run.get('number_of_epochs', 'unrecorded')}, batch {run.get('batch_size', '?')}, "
        f"lr {run.get('lr', '?')}, class weights {run.get('class_weights', '?')}; checkpoint "
        f"selected on dev {run.get('selection_metric', 'EER')}"
        + (f" (epoch {results['selected_checkpoint'].get('epoch')})" if results.get("selected_checkpoint") else ""),
        "",
    ]
    lines += _results_section(results)
    lines += [
        "## Calibration and outputs", "",
        f"`calibration.json` maps the raw score s ({score_name(config['head']['type'])}) to a natural-log likelihood "
        f"ratio `llr = {calibration.a:.6g} * s + {calibration.b:.6g}`, fitted on the run's dev "
        f"scores at bona fide prior {calibration.prior:.4f}. The posterior probability of bona "
        f"fide is `sigmoid(llr + logit(prior))`; by default the prior is the ASVspoof 5 cost "
        f"model's effective prior ({ASVSPOOF5_COSTS.effective_prior:.4f}: Pspoof "
        f"{ASVSPOOF5_COSTS.p_spoof}, Cmiss {ASVSPOOF5_COSTS.c_miss}, Cfa {ASVSPOOF5_COSTS.c_fa}), "
        f"whose Bayes decision is bona fide when llr >= {ASVSPOOF5_COSTS.threshold:.4f}.", "",
        "## Use", "",
        "```bash",
        "python -m lobes.release --verify THIS_FOLDER_OR_HUB_ID   # golden scores recomputed",
        "python -m lobes.detect THIS_FOLDER_OR_HUB_ID my_audio/ --output llr --out scores.txt",
        "```", "",
        "```python",
        "from lobes import SpoofDetector",
        "detector = SpoofDetector.from_pretrained(\"THIS_FOLDER_OR_HUB_ID\")",
        "result = detector.score_file(\"clip.flac\")  # result.score, result.llr, result.posterior",
        "```", "",
        "Loading reads JSON and safetensors only: nothing in this folder is code, and no other "
        "model is downloaded. `golden.json` holds the raw scores of three clips that lobes "
        f"generates itself (no dataset audio); `--verify` fails when one moves by more than "
        f"{_golden_tolerance()} (a changed weight or a dependency that changed the maths).", "",
        "## Intended use", "",
        "Research and triage: ranking or flagging recordings for a closer look, measuring "
        "countermeasures, comparing layer depths. A score is evidence, not proof.", "",
        "## Limitations", "",
        f"- Trained on {dataset} only: attacks, languages, channels and codecs unlike its training "
        "data can be scored confidently and wrongly; measure on data like yours first.",
        "- The calibration holds for data like the dev set; elsewhere LLRs and posteriors can be "
        "badly calibrated even when the ranking (EER) is good.",
        _length_limitation(config),
        "- Not a speaker verification system, and not robust to an adversary who tests against it.",
        "- Licence: `other` until set by whoever publishes it, from the SSL model's and the "
        "training data's licences.", "",
        "## Citation", "",
        "The method (truncated layer-wise SSL countermeasures):", "",
        "```bibtex", CITATION, "```", "",
    ]
    return "\n".join(lines)


def _run_kind(run):
    """How the model was trained, when it is one branch or depth of a larger run."""
    branched = run.get("branched_run")
    if isinstance(branched, dict):
        return (f" (initialisation of this branch); one branch of a run over depths "
                f"{branched.get('n_layers')}, heads {branched.get('heads')}, initialisation seeds "
                f"{branched.get('init_seeds')}, batch order from seed {branched.get('batch_order_seed')}. "
                f"{branched.get('semantics', '')}")
    if run.get("multi_depth_run"):
        return f"; one depth of a multi-depth run over depths {run['multi_depth_run']} (one encoder pass)"
    return ""


def _golden_tolerance():
    return f"{GOLDEN_TOLERANCE:g}"


def _results_section(results):
    sets = results.get("test_sets") or {}
    if not sets:
        return ["## Results", "", "The run has no results.json test sets.", ""]
    has_intervals = any(metric_interval(m, key) for m in sets.values() for key, _ in CARD_METRICS)
    lines = ["## Results", "",
             "From the run's `results.json` (dev: the set that selected the checkpoint and fitted "
             "the calibration, so its calibrated figures are optimistic). ASVspoof 5 cost model. "
             + ("Brackets: the intervals the run reports." if has_intervals
                else "The run reports no confidence intervals."), "",
             "| set | trials | " + " | ".join(label for _, label in CARD_METRICS)
             + " | calibrated actDCF | calibrated Cllr |",
             "|---|---" + "|---" * (len(CARD_METRICS) + 2) + "|"]
    for set_name, metrics in sets.items():
        calibrated = metrics.get("calibrated") or {}
        lines.append(
            f"| {set_name} | {metrics.get('n_trials', '-')} | "
            + " | ".join(_cell(metrics, key) for key, _ in CARD_METRICS)
            + f" | {_cell(calibrated, 'act_dcf')} | {_cell(calibrated, 'cllr')} |"
        )
    return lines + [""]
