"""The stage tasks both Dataward DAGs share (wiring only; no DAG is defined here).

``stage_chain(info)`` adds validate -> screen -> decide -> report -> review -> publish
after the ingest task's output ``info``; called inside a task group, the tasks join that
group. ``review`` is Airflow's human-in-the-loop operator: a version the policy sends to
review waits under "Required actions" for a reviewer's decision, which goes through the
same ``dataward.governance.review.sign_off`` as the Dataward page and the CLI.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, task

from dataward.airflow.tasks import REVIEW_KEEP, REVIEW_OPTIONS, SCREEN_QUEUE, approved_asset

APPROVED = approved_asset()


@task(task_id="validate")
def validate_task(info: dict) -> dict:
    from dataward.airflow.tasks import stage_task

    return stage_task("validate", info)


@task(task_id="screen", queue=SCREEN_QUEUE)
def screen_task(info: dict) -> dict:
    from dataward.airflow.tasks import stage_task

    return stage_task("screen", info)


@task(task_id="decide")
def decide_task(info: dict) -> dict:
    from dataward.airflow.tasks import stage_task

    return stage_task("decide", info)


@task(task_id="report")
def report_task(info: dict) -> dict:
    from dataward.airflow.tasks import stage_task

    return stage_task("report", info)


@task(task_id="publish", outlets=[APPROVED])
def publish_task(info: dict, *, outlet_events=None) -> dict:
    """Publish, close the pipeline run, and update the approved-snapshots asset."""
    from dataward.airflow.tasks import finish_task, stage_task

    info = stage_task("publish", info)
    summary = finish_task(info)
    print(f"dataward: {summary}")
    if info["publish"].get("published"):
        outlet_events[APPROVED].extra = {"ref": summary["snapshot"], "source": info["ref"],
                                         "path": info["publish"]["path"]}
    return summary


class DatawardReview(HITLOperator):
    """Wait for a reviewer's decision on a quarantined version (no wait otherwise)."""

    template_fields = (*HITLOperator.template_fields, "info")

    def __init__(self, *, info, params=None, **kwargs):
        # the DAG's own params arrive here too (marked source="dag"); the form asks only the reason
        params = dict(params or {})
        params["reason"] = Param("", type="string", title="Reason (recorded in the audit log)", source="task")
        # Retries: a refused answer (the importer's own approval, say) fails the try and the
        # next try asks again; a try that Airflow lost while resuming it (its parked first
        # process reporting late) finds the sign-off made and does not ask twice.
        kwargs.setdefault("retries", 3)
        kwargs.setdefault("retry_delay", timedelta(seconds=10))
        super().__init__(subject="Dataward sign-off", options=REVIEW_OPTIONS, defaults=[REVIEW_KEEP],
                         params=params, **kwargs)
        self.info = info

    @property
    def serialized_params(self):
        # only the form's own field: the DAG's params are merged into every task's
        return {"reason": self.params.get_param("reason").serialize()}

    def validate_params_input(self, params_input):
        if set(params_input) - {"reason"}:
            raise ValueError(f"the review form has one field, reason; got {sorted(params_input)}")

    def execute(self, context):
        from airflow.providers.common.compat.sdk import conf

        from dataward.airflow.tasks import review_request

        if not self.info.get("wait_for_review", True):
            return {**self.info, "review": {"outcome": "not asked (wait_for_review is off)"}}
        ask = review_request(self.info, base_url=conf.get("api", "base_url", fallback=""))
        if ask is None:
            return {**self.info, "review": {"outcome": "not needed"}}
        self.subject, self.body, self.assigned_users = ask["subject"], ask["body"], ask["assigned_users"]
        self.response_timeout = timedelta(hours=ask["timeout_hours"])
        return super().execute(context)

    def execute_complete(self, context, event):
        from dataward.airflow.tasks import review_response

        answer = super().execute_complete(context, event)
        return review_response(self.info, chosen=answer["chosen_options"],
                               reason=(answer["params_input"] or {}).get("reason"),
                               user=answer["responded_by_user"], timed_out=bool(event.get("timedout")),
                               report_sha256=(self.info.get("report") or {}).get("sha256"))


def stage_chain(info):
    reviewed = DatawardReview(task_id="review", info=report_task(decide_task(screen_task(validate_task(info)))))
    return publish_task(reviewed.output)
