"""The MaestroMotif Grafana dashboard, as code.

Why code and not hand-written JSON: panels share one datasource variable, one layout and
the same query idioms (rates, ratios of histogram sums, quantiles); Grafana's own typed
builders (``grafana-foundation-sdk``) keep them consistent and reviewable as Python, and
the JSON the chart ships is generated from here. ``tests/observability`` checks that the
committed JSON equals this module's output (no drift) and runs every query against a real
Prometheus that scrapes the real services.

    python -m maestromotif.observability.dashboard            # rewrite the chart's JSON
    python -m maestromotif.observability.dashboard --check    # exit 1 if it is stale

Queries use Grafana's ``$__rate_interval`` for per-second rates and fixed 5-minute windows
for means over skill runs (a skill run ends seldom; short windows would be mostly empty).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as pb
from grafana_foundation_sdk.builders import stat as sb
from grafana_foundation_sdk.builders import timeseries as tb
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

UID = "maestromotif-overview"
TITLE = "MaestroMotif"
# Where the Helm chart loads it from (a ConfigMap for the Grafana sidecar).
CHART_PATH = Path(__file__).resolve().parents[2] / "helm/maestromotif/files/dashboards/maestromotif.json"

_DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
# The services' scrape jobs, matched by component name (see the rules file for why).
_SERVICES_UP = 'up{job=~".*(learner|actors|reward|annotator|codegen|agent).*"}'
_ANNOTATE_JOB = 'job_name=~".*annotat.*"'


def _q(expr: str, legend: str = "", ref: str = "A") -> pb.Dataquery:
    return pb.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).range()


def _targets(queries: list[tuple[str, str]]) -> list[pb.Dataquery]:
    return [_q(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)]


def _series(title: str, description: str, queries: list[tuple[str, str]], unit: str = "short",
            width: int = 8, minimum: float | None = None) -> tb.Panel:
    panel = (
        tb.Panel().title(title).description(description).datasource(_DS).unit(unit).span(width).height(8)
        .targets(_targets(queries))
        .legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST).placement(cm.LegendPlacement.BOTTOM)
                .show_legend(True))
        .line_width(1).fill_opacity(10).show_points(cm.VisibilityMode.NEVER)
    )
    if minimum is not None:
        panel = panel.min(minimum)
    return panel


def _stat(title: str, description: str, expr: str, unit: str = "short", width: int = 4,
          thresholds: list[tuple[float | None, str]] | None = None) -> sb.Panel:
    steps = [dm.Threshold(value=v, color=c) for v, c in (thresholds or [(None, "green")])]
    return (
        sb.Panel().title(title).description(description).datasource(_DS).unit(unit).span(width).height(4)
        .targets([_q(expr)])
        .thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps))
        .graph_mode(cm.BigValueGraphMode.AREA)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def _quantiles(metric: str, by: str = "") -> list[tuple[str, str]]:
    group = f"le{', ' + by if by else ''}"
    prefix = f"{{{{{by}}}}} " if by else ""
    return [(f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[$__rate_interval])))", f"{prefix}p{int(q * 100)}")
            for q in (0.5, 0.95, 0.99)]


def _per_run_mean(metric: str) -> str:
    return f"sum by (skill) (rate({metric}_sum[5m])) / sum by (skill) (rate({metric}_count[5m]))"


def build() -> dict[str, Any]:
    """The dashboard as a JSON-ready dict."""
    rate = "[$__rate_interval]"
    builder = (
        db.Dashboard(TITLE).uid(UID).tags(["maestromotif"])
        .description("Training throughput, skills, tasks, reward, annotation and codegen of MaestroMotif.")
        .refresh("30s").time("now-3h", "now").timezone("browser").editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(db.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        # --- overview ----------------------------------------------------------------------
        .with_row(db.Row("Overview"))
        .with_panel(_stat("Samples trained / s", "Training throughput of the learner (rate of the trained-sample counter).",
                          f"sum(rate(maestromotif_learner_samples_trained_total{rate}))", "short"))
        .with_panel(_stat("Connected actors", "Actor streams open on the learner (each actor process holds one).",
                          "sum(maestromotif_learner_connected_actors)", "short",
                          thresholds=[(None, "red"), (1, "green")]))
        .with_panel(_stat("Connected environments", "NetHack games across all connected actors.",
                          "sum(maestromotif_learner_connected_envs)", "short"))
        .with_panel(_stat("Policy version", "SGD steps taken by the learner (the training step).",
                          "max(maestromotif_learner_policy_version)", "short"))
        .with_panel(_stat("Policy lag", "Mean policy lag (SGD steps) of the last trained batch.",
                          "max(maestromotif_learner_policy_lag)", "short",
                          thresholds=[(None, "green"), (5, "orange"), (10, "red")]))
        .with_panel(_stat("Targets down", "MaestroMotif scrape targets Prometheus cannot reach.",
                          f"count({_SERVICES_UP} == 0) or vector(0)", "short",
                          thresholds=[(None, "green"), (1, "red")]))
        # --- training ----------------------------------------------------------------------
        .with_row(db.Row("Training"))
        .with_panel(_series("Samples / s", "Trained samples per second: the counter's rate and the learner's own recent figure.", [
            (f"sum(rate(maestromotif_learner_samples_trained_total{rate}))", "trained (rate)"),
            ("sum(maestromotif_learner_samples_per_second)", "trained (learner's figure)"),
            (f"sum(rate(maestromotif_learner_env_steps_total{rate}))", "env steps received"),
        ], minimum=0))
        .with_panel(_series("Env steps / s per actor", "Environment steps of each actor pod (all its worker processes).", [
            (f"sum by (instance) (rate(maestromotif_actor_env_steps_total{rate}))", "{{instance}}"),
        ], minimum=0))
        .with_panel(_series("Connected actors", "Actor streams and games on the learner; worker processes on the actor side.", [
            ("sum(maestromotif_learner_connected_actors)", "actor streams (learner)"),
            ("sum(maestromotif_learner_connected_envs)", "games (learner)"),
            ("sum(maestromotif_actor_connected_workers)", "connected workers (actors)"),
            ("sum(maestromotif_actor_worker_processes)", "live workers (actors)"),
        ], minimum=0))
        .with_panel(_series("Policy lag", "Mean lag (SGD steps between acting and training) of each trained batch.", [
            ("maestromotif_learner_policy_lag", "{{instance}}"),
        ], minimum=0))
        .with_panel(_series("Losses", "Last training losses reported by sample-factory's learner.", [
            ("maestromotif_learner_loss", "{{kind}}"),
        ]))
        .with_panel(_series("Train step and inference latency", "Duration of one training batch; of one batched inference.", [
            *[(e, f"train {l}") for e, l in _quantiles("maestromotif_learner_train_step_seconds")[:2]],
            *[(e, f"inference {l}") for e, l in _quantiles("maestromotif_learner_inference_latency_seconds")[:2]],
        ], unit="s", minimum=0))
        .with_panel(_series("Inference batch size", "Environments per batched inference (mean).", [
            (f"sum(rate(maestromotif_learner_inference_batch_size_sum{rate})) / sum(rate(maestromotif_learner_inference_batch_size_count{rate}))", "mean"),
        ], minimum=0))
        .with_panel(_series("Dropped trajectories / s", "Trajectories the learner dropped (actor gone, stale, malformed).", [
            (f"sum by (reason) (rate(maestromotif_learner_dropped_trajectories_total{rate}))", "{{reason}}"),
        ], minimum=0))
        .with_panel(_series("Episodes / s and mean length", "Finished NetHack episodes (actors) and their mean steps.", [
            (f"sum(rate(maestromotif_actor_episodes_total{rate}))", "episodes / s"),
            ("sum(rate(maestromotif_actor_episode_steps_sum[5m])) / sum(rate(maestromotif_actor_episode_steps_count[5m]))", "mean steps"),
        ], minimum=0))
        # --- skills ------------------------------------------------------------------------
        .with_row(db.Row("Skills"))
        .with_panel(_series("Intrinsic return per skill run", "Mean intrinsic (reward-model) return of the skill runs finished in the last 5 minutes.", [
            (_per_run_mean("maestromotif_learner_skill_intrinsic_return"), "{{skill}}"),
        ]))
        .with_panel(_series("Skill run length", "Mean steps of the skill runs finished in the last 5 minutes.", [
            (_per_run_mean("maestromotif_learner_skill_run_steps"), "{{skill}}"),
        ], minimum=0))
        .with_panel(_series("Skill runs / min", "Finished runs of each skill per minute.", [
            ("sum by (skill) (rate(maestromotif_learner_skill_run_steps_count[5m])) * 60", "{{skill}}"),
        ], minimum=0))
        .with_panel(_series("Skill competence", "Competence of each skill over its recent finished runs (learner): the "
                            "fraction of runs that did the skill; for the discoverer, new squares per step.", [
            ("maestromotif_learner_skill_competence", "{{skill}}"),
        ], minimum=0, width=12))
        .with_panel(_series("Competent runs / min", "Skill runs that met the competence criterion, per minute.", [
            ("sum by (skill) (rate(maestromotif_learner_skill_competent_runs_total[5m])) * 60", "{{skill}}"),
        ], minimum=0, width=12))
        # --- tasks (agent) -----------------------------------------------------------------
        .with_row(db.Row("Tasks (agent)"))
        .with_panel(_series("Task success", "Success ratio of each task at its last evaluation (agent).", [
            ("maestromotif_agent_task_success_ratio", "{{task}}"),
        ], unit="percentunit", minimum=0))
        .with_panel(_series("Agent episodes / min", "Episodes played through the Agent API, by task and outcome.", [
            ("sum by (task, outcome) (rate(maestromotif_agent_episodes_total[5m])) * 60", "{{task}} {{outcome}}"),
        ], minimum=0))
        .with_panel(_series("Agent load", "Episodes in progress; requests refused (by reason) per minute.", [
            ("sum(maestromotif_agent_active_episodes)", "active episodes"),
            ("sum by (reason) (rate(maestromotif_agent_rejected_total[5m])) * 60", "rejected: {{reason}}"),
        ], minimum=0))
        # --- reward service ----------------------------------------------------------------
        .with_row(db.Row("Reward service"))
        .with_panel(_series("Reward latency", "Score handling time in the reward service; the learner's reward calls end to end.", [
            *_quantiles("maestromotif_reward_latency_seconds"),
            *[(e, f"learner call {l}") for e, l in _quantiles("maestromotif_learner_reward_call_latency_seconds")[1:2]],
        ], unit="s", minimum=0))
        .with_panel(_series("Reward cache hit ratio", "Transitions answered from the message-hash cache / looked up.", [
            (f"sum(rate(maestromotif_reward_cache_hits_total{rate})) / sum(rate(maestromotif_reward_cache_lookups_total{rate}))", "recent"),
            ("avg(maestromotif_reward_cache_hit_ratio)", "since start"),
        ], unit="percentunit", minimum=0))
        .with_panel(_series("Reward calls / s", "Score calls by outcome (service side) and failed calls (learner side).", [
            (f"sum by (outcome) (rate(maestromotif_reward_requests_total{rate}))", "{{outcome}}"),
            (f"sum(rate(maestromotif_learner_reward_call_errors_total{rate}))", "learner: failed calls"),
            (f"sum(rate(maestromotif_reward_samples_total{rate}))", "transitions scored"),
        ], minimum=0))
        # --- annotation and LLM ------------------------------------------------------------
        .with_row(db.Row("Annotation and LLM"))
        .with_panel(_series("Annotation progress", "Labels produced per minute by skill (annotator service); completed shards of the Indexed annotation Job (kube-state-metrics).", [
            ("sum by (skill) (rate(maestromotif_annotator_annotations_total[5m])) * 60", "labels/min {{skill}}"),
            (f"sum by (job_name) (kube_job_status_succeeded{{{_ANNOTATE_JOB}}}) / sum by (job_name) (kube_job_spec_completions{{{_ANNOTATE_JOB}}})", "shards done {{job_name}}"),
        ], minimum=0))
        .with_panel(_series("Annotation jobs", "Annotation jobs of the annotator service by state.", [
            ("sum by (state) (maestromotif_annotator_jobs)", "{{state}}"),
        ], minimum=0))
        .with_panel(_series("LLM tokens / s", "Tokens through the LLM backend for annotation and for code generation.", [
            ("sum by (direction) (rate(maestromotif_annotator_llm_tokens_total[5m]))", "annotator {{direction}}"),
            ("sum by (direction) (rate(maestromotif_codegen_tokens_total[5m]))", "codegen {{direction}}"),
        ], minimum=0))
        .with_panel(_series("LLM latency and parse failures", "LLM call latency (annotator); replies with no verdict per minute.", [
            ("histogram_quantile(0.95, sum by (le, kind) (rate(maestromotif_annotator_llm_latency_seconds_bucket[5m])))", "p95 {{kind}}"),
            ("sum by (final) (rate(maestromotif_annotator_parse_failures_total[5m])) * 60", "parse failures/min final={{final}}"),
        ], minimum=0, width=12))
        # --- codegen -----------------------------------------------------------------------
        .with_row(db.Row("Code generation"))
        .with_panel(_series("Codegen verdicts / hour", "Generations by kind and final verdict.", [
            ("sum by (kind, verdict) (increase(maestromotif_codegen_generations_total[1h]))", "{{kind}} {{verdict}}"),
        ], minimum=0))
        .with_panel(_series("Validation stage verdicts / hour", "Verdicts of each validation stage (static checks, sandbox, self-test).", [
            ("sum by (stage, verdict) (increase(maestromotif_codegen_stage_verdicts_total[1h]))", "{{stage}} {{verdict}}"),
        ], minimum=0))
        .with_panel(_series("Codegen latency and repairs", "Generation latency by kind (p95); repair rounds per generation (mean).", [
            ("histogram_quantile(0.95, sum by (le, kind) (rate(maestromotif_codegen_latency_seconds_bucket[1h])))", "p95 {{kind}} (s)"),
            ("sum(rate(maestromotif_codegen_repair_rounds_sum[1h])) / sum(rate(maestromotif_codegen_repair_rounds_count[1h]))", "repair rounds (mean)"),
        ], minimum=0))
        # --- services ----------------------------------------------------------------------
        .with_row(db.Row("Services"))
        .with_panel(_series("Targets up", "1 when Prometheus scraped the target.", [
            (_SERVICES_UP, "{{job}} {{instance}}"),
        ], minimum=0))
        .with_panel(_series("gRPC calls / s", "Calls handled by each service, by status code.", [
            (f"sum by (job, grpc_code) (rate(maestromotif_grpc_server_requests_total{rate}))", "{{job}} {{grpc_code}}"),
        ], minimum=0))
        .with_panel(_series("gRPC error ratio", "Share of calls ending with a code other than OK, by service.", [
            # "or ... * 0": a service with no failed call yet has no non-OK series; show 0, not a gap
            (f'(sum by (job) (rate(maestromotif_grpc_server_requests_total{{grpc_code!="OK"}}{rate})) or sum by (job) (rate(maestromotif_grpc_server_requests_total{rate})) * 0) / sum by (job) (rate(maestromotif_grpc_server_requests_total{rate}))', "{{job}}"),
        ], unit="percentunit", minimum=0))
    )
    out: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    # The builders leave panel ids unset (or 0 on rows); Grafana links and edits panels by
    # id, so number them in layout order.
    for i, panel in enumerate(out["panels"], start=1):
        panel["id"] = i
    return out


def render() -> str:
    """The dashboard JSON exactly as committed (stable key order, two-space indent, newline)."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel, rows' nested panels included."""
    out: list[tuple[str, str]] = []
    stack = list(dashboard.get("panels", []))
    while stack:
        panel = stack.pop(0)
        stack[0:0] = panel.get("panels", []) or []
        for target in panel.get("targets", []) or []:
            if target.get("expr"):
                out.append((panel.get("title", ""), target["expr"]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or check) the MaestroMotif Grafana dashboard JSON.")
    parser.add_argument("--out", type=Path, default=CHART_PATH, help=f"output file (default: {CHART_PATH})")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the generated JSON")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is stale: run python -m maestromotif.observability.dashboard", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date ({len(queries(build()))} queries)")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(queries(build()))} queries)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
