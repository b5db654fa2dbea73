#!/usr/bin/env python3
"""Generates a Python client from docs/openapi.yaml with openapi-python-client (pinned in
scripts/lib/common.sh) and runs a short flow with it against a running local stack: create a
task, poll it, read its errors and result, list tasks, and register, list and delete a webhook
endpoint. Every 2xx answer must parse into a generated model, never raw bytes: the check that
the contract gives each answer one media type a generator understands.

Usage: generated_client_check.py GENERATOR SPEC BASE_URL WORK_DIR
"""

import shutil
import subprocess
import sys
import time
import uuid


def generate(generator: str, spec: str, work: str) -> None:
    shutil.rmtree(f"{work}/bt_client", ignore_errors=True)
    run = subprocess.run(
        [generator, "generate", "--path", spec, "--meta", "none",
         "--output-path", f"{work}/bt_client"],
        capture_output=True, text=True,
    )
    if run.returncode != 0:
        sys.exit(f"openapi-python-client failed:\n{run.stdout}\n{run.stderr}")


def main() -> None:
    generator, spec, base_url, work = sys.argv[1:5]
    generate(generator, spec, work)
    sys.path.insert(0, work)
    from bt_client import AuthenticatedClient
    from bt_client.api.default import (
        create_task, create_webhook_endpoint, delete_webhook_endpoint, get_task,
        get_task_errors, get_task_result, list_tasks, list_webhook_endpoints,
    )
    from bt_client import models as m

    client = AuthenticatedClient(base_url=base_url, token="dev-token-alice")
    checked = []

    def parsed(name, response, model):
        """The answer's model, after checking it is a 2xx parsed into `model`."""
        status = int(response.status_code)
        if not 200 <= status < 300:
            sys.exit(f"{name}: answered {status}: {response.content[:500]!r}")
        if not isinstance(response.parsed, model):
            sys.exit(f"{name}: parsed into {type(response.parsed).__name__}, not {model.__name__}")
        checked.append(name)
        return response.parsed

    # A task with one payee BOS takes and one it already knows (a duplicate).
    account = uuid.uuid4().int % 10**10
    iban = german_iban(account)
    items = [
        m.BeneficiaryInput(name="Ada Client", country="DE", currency="EUR", iban=iban,
                           external_id="gen-1"),
        m.BeneficiaryInput(name="Alan Client", country="GB", currency="GBP",
                           iban="GB33BUKB20201555555555", external_id="gen-2"),
    ]
    import_type = m.CreateTaskTaskType.BENEFICIARIES_IMPORT
    task = parsed("createTask", create_task.sync_detailed(import_type, client=client, body=items,
                                                          idempotency_key=str(uuid.uuid4())), m.Task)
    for _ in range(300):
        task = parsed("getTask", get_task.sync_detailed(m.GetTaskTaskType.BENEFICIARIES_IMPORT,
                                                        task.task_id, client=client), m.Task)
        if task.finished_at:
            break
        time.sleep(0.2)
    if str(task.status) != "completed_with_errors":
        sys.exit(f"getTask: the task ended {task.status}")
    errors = parsed("getTaskErrors", get_task_errors.sync_detailed(
        m.GetTaskErrorsTaskType.BENEFICIARIES_IMPORT, task.task_id, client=client),
        m.GetTaskErrorsResponse200)
    if [e.code for e in errors.errors] != ["duplicate_beneficiary"]:
        sys.exit(f"getTaskErrors: {errors}")
    result = parsed("getTaskResult", get_task_result.sync_detailed(
        m.GetTaskResultTaskType.BENEFICIARIES_IMPORT, task.task_id, client=client),
        m.GetTaskResultResponse200)
    if not all(isinstance(r, m.ItemOutcome) for r in result.results) or len(result.results) != 2:
        sys.exit(f"getTaskResult: {result}")
    parsed("listTasks", list_tasks.sync_detailed(m.ListTasksTaskType.BENEFICIARIES_IMPORT,
                                                 client=client), m.ListTasksResponse200)
    endpoint = parsed("createWebhookEndpoint", create_webhook_endpoint.sync_detailed(
        client=client, body=m.WebhookEndpointInput(
            url="http://127.0.0.1:8124/hooks",
            event_types=[m.WebhookEventType.TASK_COMPLETED])), m.WebhookEndpointWithSecret)
    parsed("listWebhookEndpoints", list_webhook_endpoints.sync_detailed(client=client),
           m.ListWebhookEndpointsResponse200)
    parsed("deleteWebhookEndpoint", delete_webhook_endpoint.sync_detailed(
        endpoint.id, client=client), m.DeleteWebhookEndpointResponse200)
    print(f"generated client: {len(checked)} answers parsed into models ({', '.join(sorted(set(checked)))})")


def german_iban(account: int) -> str:
    bban = f"37040044{account:010d}"
    digits = "".join(str(int(c, 36)) for c in bban + "DE00")
    return f"DE{98 - int(digits) % 97:02d}{bban}"


if __name__ == "__main__":
    main()
