"""codepipeline.py: AWS CodePipeline service for Ferry's loopback AWS double (stdlib only).

The core (server.py) does HTTP, SigV4, model validation, JSON 1.1 encoding and
fault injection; this module keeps pipelines, executions and jobs:
PutJobSuccessResult, PutJobFailureResult, PollForJobs, AcknowledgeJob,
GetJobDetails, StartPipelineExecution, GetPipelineExecution and
GetPipelineState. Anything else is UnknownOperationException (400).

Jobs
  - States: Created -> Dispatched (PollForJobs, which hands a job out once, with
    a nonce) -> InProgress (AcknowledgeJob with that nonce, or lambda_event())
    -> Succeeded / Failed. A result is accepted in any non-final state.
  - Result checks, in AWS order: input (ValidationException, all problems in
    one "N validation errors detected: ..." message: summary 1..2048,
    failureDetails.message 1..5000, failureDetails.type enum, token 1..2048,
    outputVariables key pattern, outputVariables together with
    continuationToken), then outputVariables over 122880 bytes (key + value
    UTF-8 bytes) -> OutputVariablesSizeExceededException (the model's own
    error for it), then jobId (not a UUID or unknown -> JobNotFoundException),
    then a second result -> InvalidJobStateException.
  - A success with continuationToken completes the job and creates a NEW job
    (new UUID, status Created, same data and action execution, with
    data.continuationToken set); PollForJobs / lambda_event hand it out again.
  - PollForJobs only serves owner "Custom" action types that exist (seeded, or
    used by a seeded job or pipeline); otherwise ActionTypeNotFoundException.
    maxBatchSize defaults to 1; queryParam filters on action configuration.

Executions
  - StartPipelineExecution: the same clientRequestToken on the same pipeline
    returns the same pipelineExecutionId; variables must be unique and, when
    the pipeline declares variables, declared (ValidationException);
    "busy" pipelines raise ConflictException.
  - Status: "Failed" as soon as one of its jobs failed; "InProgress" while one
    of its jobs is unfinished; otherwise InProgress until GetPipelineExecution
    has been called executionPolls times AND executionSeconds have passed, then
    executionResult. A status seeded through "executions" wins over all that.
  - With "jobsOnStart", starting creates one job per Lambda-invoke or Custom
    action of the first stage that has any; when all jobs of a stage succeed
    the next such stage gets its jobs.
  - GetPipelineState: stages before the current one Succeeded, the current one
    InProgress/Failed; action latestExecution from its newest job.

Control methods (JSON-ready dicts in and out), served by control() as base.py's
hook at /_ferry/codepipeline: POST "" or /seed, GET "" ({"jobs", "results"}), GET /results,
GET /jobs, GET /jobs/<id>, POST /lambda-event {"jobId"?} -> {"event": ...|null}, POST /reset.
A bad seed body is 400 BadRequest.

  CodePipeline.seed(body, ctx=None) -> {"pipelines": [name], "jobs": [{"id"}],
        "executions": [{"pipelineExecutionId"}]}
    body = {
      "pipelines": [{"name": "deploy", "version": 1,
          "stages": [{"name": "Deploy", "actions": [{"name": "Run",
              "actionTypeId": {"category", "owner", "provider", "version"},
              "configuration": {"FunctionName": "f"}, "inputArtifacts": [{"name": "src"}],
              "outputArtifacts": [{"name": "out"}]}]}],
          "variables": [{"name": "env", "defaultValue": "dev"}],    optional declaration
          "executionPolls": 1, "executionSeconds": 0, "executionResult": "Succeeded",
          "busy": false, "jobsOnStart": false}],
      "actionTypes": [{"category", "owner", "provider", "version"}],
      "jobs": [{"id": "<uuid>" (default new uuid4),
          "actionTypeId": {...}            default Invoke/AWS/Lambda/1,
          "accountId": "...", "status": "Created" | "InProgress",
          "pipelineName", "stageName", "actionName", "pipelineExecutionId",  optional context
          "data": {"actionConfiguration": {"configuration": {...}}, "inputArtifacts": [...],
                   "outputArtifacts": [...], "artifactCredentials": {...} (default: fixed fake keys),
                   "continuationToken": "...", "encryptionKey": {...}}}],
      "executions": [{"pipelineName", "pipelineExecutionId" (default new),
          "status": "Succeeded", "statusSummary": "..."}]}   create or force
  CodePipeline.results() -> [{"jobId", "kind": "success"|"failure", "at", "newJobId"?,
        + the request's currentRevision / continuationToken / executionDetails /
        outputVariables / failureDetails}] in arrival order
  CodePipeline.job(job_id) -> {"id", "status", "nonce", "accountId", "data",
        "result", "continuedFrom", "continuedBy", "createdAt"} or None
  CodePipeline.jobs() -> [job(...) for every job, in creation order]
  CodePipeline.lambda_event(job_id=None, ctx=None) -> {"CodePipeline.job": {"id",
        "accountId", "data"}} for that job (or the oldest Created Lambda job), which
        becomes InProgress; None when there is none.
"""

import copy
import re
import secrets
import time
import uuid

from base import AwsError, Service
from credentials import ACCOUNT_ID
import models

DEFAULT_REGION = "us-east-1"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
VAR_KEY_RE = re.compile(r"^[A-Za-z0-9@\-_]+$")
LAMBDA_TYPE = {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"}
FAILURE_TYPES = ["JobFailed", "ConfigurationError", "PermissionError", "RevisionOutOfSync",
                 "RevisionUnavailable", "SystemUnavailable"]
OUTPUT_VARIABLES_MAX = 122880
ARTIFACT_CREDENTIALS = {"accessKeyId": "ASIAFERRYARTIFACTS00", "secretAccessKey": "ferry-artifact-secret",
                        "sessionToken": "ferry-artifact-session"}
FINAL = ("Succeeded", "Failed", "TimedOut")


def _type_key(t):
    return (t.get("category"), t.get("owner"), t.get("provider"), str(t.get("version")))


def _is_job_action(t):
    return t.get("owner") == "Custom" or (t.get("category") == "Invoke" and t.get("provider") == "Lambda")


def _length(errors, value, where, lo, hi):
    if value is None:
        return
    if len(value) < lo:
        errors.append("Value at '%s' failed to satisfy constraint: Member must have length greater than or "
                      "equal to %d" % (where, lo))
    elif len(value) > hi:
        errors.append("Value at '%s' failed to satisfy constraint: Member must have length less than or "
                      "equal to %d" % (where, hi))


def _raise_validation(errors):
    if errors:
        raise AwsError("ValidationException", models.message(errors))


class CodePipeline(Service):
    signing_name = "codepipeline"
    protocol = "json"
    target_prefix = "CodePipeline_20150709"

    def reset(self):
        with self._lock:
            self._pipelines = {}    # name -> dict
            self._executions = {}   # id -> dict
            self._jobs = {}         # id -> dict, in creation order
            self._types = set()     # registered action type keys
            self._results = []

    # ---------------------------------------------------------------- jobs
    def _new_job(self, data, account, now, job_id=None, status="Created", parent=None):
        job_id = job_id or str(uuid.uuid4())
        self._types.add(_type_key(data["actionTypeId"]))
        self._jobs[job_id] = {"id": job_id, "status": status, "nonce": None, "accountId": account,
                              "data": data, "result": None, "continuedFrom": parent,
                              "continuedBy": None, "createdAt": now}
        return self._jobs[job_id]

    def _job_data(self, job, ctx, lambda_shape=False):
        data = copy.deepcopy(job["data"])
        pc = data.get("pipelineContext")
        if pc and pc.get("pipelineName") and "pipelineArn" not in pc:
            pc["pipelineArn"] = "arn:aws:codepipeline:%s:%s:%s" % (
                ctx.region if ctx else DEFAULT_REGION, self._account(job, ctx), pc["pipelineName"])
        if lambda_shape:
            data.pop("actionTypeId", None)
            data.pop("pipelineContext", None)
        return data

    def _account(self, job, ctx):
        return job["accountId"] or (ctx.account_id if ctx else ACCOUNT_ID)

    def _job(self, job_id):
        """The job with that id (always a UUID: seed refuses others); JobNotFoundException."""
        job = self._jobs.get(job_id)
        if job is None:
            raise AwsError("JobNotFoundException", "The job with id '%s' was not found." % job_id)
        return job

    def _job_for_result(self, job_id):
        job = self._job(job_id)
        if job["status"] in FINAL:
            raise AwsError("InvalidJobStateException",
                           "The job with id '%s' is in state %s and cannot accept another result."
                           % (job_id, job["status"]))
        return job

    def _op_PutJobSuccessResult(self, params, ctx):
        errors = []
        details = params.get("executionDetails") or {}
        _length(errors, details.get("summary"), "executionDetails.summary", 1, 2048)
        _length(errors, details.get("externalExecutionId"), "executionDetails.externalExecutionId", 1, 1500)
        pct = details.get("percentComplete")
        if pct is not None and not 0 <= pct <= 100:
            errors.append("Value at 'executionDetails.percentComplete' failed to satisfy constraint: Member must "
                          "have value between 0 and 100")
        rev = params.get("currentRevision") or {}
        _length(errors, rev.get("revision"), "currentRevision.revision", 1, 1500)
        _length(errors, rev.get("changeIdentifier"), "currentRevision.changeIdentifier", 1, 100)
        _length(errors, rev.get("revisionSummary"), "currentRevision.revisionSummary", 1, 2048)
        token = params.get("continuationToken")
        _length(errors, token, "continuationToken", 1, 2048)
        variables = params.get("outputVariables") or {}
        for key in variables:
            if not VAR_KEY_RE.match(key):
                errors.append("Value at 'outputVariables' failed to satisfy constraint: Map keys must satisfy "
                              "constraint: [Member must satisfy regular expression pattern: [A-Za-z0-9@\\-_]+]")
                break
        if variables and token is not None:
            errors.append("outputVariables can be included only when there is no continuation token on the "
                          "request")
        _raise_validation(errors)
        size = sum(len(k.encode("utf-8")) + len(str(v).encode("utf-8")) for k, v in variables.items())
        if size > OUTPUT_VARIABLES_MAX:
            raise AwsError("OutputVariablesSizeExceededException",
                           "Exceeded the total size limit for all variables in the pipeline: %d bytes, the limit "
                           "is %d bytes" % (size, OUTPUT_VARIABLES_MAX))
        job = self._job_for_result(params["jobId"])
        job["status"] = "Succeeded"
        record = {k: copy.deepcopy(v) for k, v in params.items() if k != "jobId"}
        record.update(jobId=job["id"], kind="success", at=ctx.now)
        if token is not None:
            data = copy.deepcopy(job["data"])
            data["continuationToken"] = token
            new = self._new_job(data, job["accountId"], ctx.now, parent=job["id"])
            job["continuedBy"] = new["id"]
            record["newJobId"] = new["id"]
        else:
            self._advance(job, ctx)
        job["result"] = record
        self._results.append(record)
        return {}

    def _op_PutJobFailureResult(self, params, ctx):
        errors = []
        fd = params["failureDetails"]
        if fd.get("type") not in FAILURE_TYPES:
            errors.append("Value '%s' at 'failureDetails.type' failed to satisfy constraint: Member must satisfy "
                          "enum value set: [%s]" % (fd.get("type"), ", ".join(FAILURE_TYPES)))
        _length(errors, fd.get("message", ""), "failureDetails.message", 1, 5000)
        _length(errors, fd.get("externalExecutionId"), "failureDetails.externalExecutionId", 1, 1500)
        _raise_validation(errors)
        job = self._job_for_result(params["jobId"])
        job["status"] = "Failed"
        record = {"jobId": job["id"], "kind": "failure", "at": ctx.now,
                  "failureDetails": copy.deepcopy(fd)}
        job["result"] = record
        self._results.append(record)
        return {}

    def _op_PollForJobs(self, params, ctx):
        atype = params["actionTypeId"]
        if atype.get("owner") != "Custom" or _type_key(atype) not in self._types:
            raise AwsError("ActionTypeNotFoundException",
                           "ActionType (Category: '%s', Provider: '%s', Owner: '%s', Version: '%s') does not exist"
                           % (atype.get("category"), atype.get("provider"), atype.get("owner"),
                              atype.get("version")))
        query = params.get("queryParam") or {}
        limit = params.get("maxBatchSize") or 1
        out = []
        for job in self._jobs.values():
            if len(out) >= limit:
                break
            if job["status"] != "Created" or _type_key(job["data"]["actionTypeId"]) != _type_key(atype):
                continue
            config = job["data"].get("actionConfiguration", {}).get("configuration", {})
            if any(config.get(k) != v for k, v in query.items()):
                continue
            job["status"] = "Dispatched"
            job["nonce"] = str(secrets.randbelow(10 ** 12))
            out.append({"id": job["id"], "data": self._job_data(job, ctx), "nonce": job["nonce"],
                        "accountId": self._account(job, ctx)})
        return {"jobs": out}

    def _op_AcknowledgeJob(self, params, ctx):
        job = self._job(params["jobId"])
        if job["nonce"] is None or job["nonce"] != params["nonce"]:
            raise AwsError("InvalidNonceException",
                           "The nonce for job '%s' does not match; another worker may have claimed it."
                           % params["jobId"])
        if job["status"] == "Dispatched":
            job["status"] = "InProgress"
        return {"status": job["status"]}

    def _op_GetJobDetails(self, params, ctx):
        job = self._job(params["jobId"])
        return {"jobDetails": {"id": job["id"], "data": self._job_data(job, ctx),
                               "accountId": self._account(job, ctx)}}

    # ---------------------------------------------------------------- pipelines
    def _pipeline(self, name, ctx):
        pipe = self._pipelines.get(name)
        if pipe is None:
            raise AwsError("PipelineNotFoundException", "Account '%s' does not have a pipeline with name '%s'"
                           % (ctx.account_id, name))
        return pipe

    def _stage_jobs(self, ex, stage_index, ctx):
        """Create jobs for the job-capable actions of the first stage >= stage_index that has any."""
        pipe = self._pipelines[ex["pipelineName"]]
        for i in range(stage_index, len(pipe["stages"])):
            stage = pipe["stages"][i]
            actions = [a for a in stage.get("actions", []) if _is_job_action(a.get("actionTypeId", {}))]
            if not actions:
                continue
            for a in actions:
                data = {"actionTypeId": dict(a["actionTypeId"]),
                        "actionConfiguration": {"configuration": dict(a.get("configuration") or {})},
                        "pipelineContext": {"pipelineName": pipe["name"], "stage": {"name": stage["name"]},
                                            "action": {"name": a["name"], "actionExecutionId": str(uuid.uuid4())},
                                            "pipelineExecutionId": ex["id"]},
                        "inputArtifacts": [self._artifact(pipe, ex, art) for art in a.get("inputArtifacts", [])],
                        "outputArtifacts": [self._artifact(pipe, ex, art) for art in a.get("outputArtifacts", [])],
                        "artifactCredentials": dict(ARTIFACT_CREDENTIALS)}
                self._new_job(data, None, ctx.now)
            return

    def _artifact(self, pipe, ex, art):
        return {"name": art["name"], "location": {"type": "S3", "s3Location": {
            "bucketName": "codepipeline-ferry-artifacts",
            "objectKey": "%s/%s/%s" % (pipe["name"][:20], art["name"][:20], ex["id"][:8])}}}

    def _advance(self, job, ctx):
        """After a final success: when the job's stage is done, start the next stage's jobs."""
        pc = job["data"].get("pipelineContext") or {}
        ex = self._executions.get(pc.get("pipelineExecutionId"))
        if ex is None or not ex.get("jobsOnStart"):
            return
        stage = pc.get("stage", {}).get("name")
        mine = [j for j in self._exec_jobs(ex) if j["data"]["pipelineContext"]["stage"]["name"] == stage]
        names = [s["name"] for s in self._pipelines[ex["pipelineName"]]["stages"]]
        if stage in names and all(j["status"] == "Succeeded" for j in mine):
            self._stage_jobs(ex, names.index(stage) + 1, ctx)

    def _exec_jobs(self, ex):
        """The newest job of each action chain of an execution."""
        return [j for j in self._jobs.values() if j["continuedBy"] is None
                and (j["data"].get("pipelineContext") or {}).get("pipelineExecutionId") == ex["id"]]

    def _exec_status(self, ex, now, poll=False):
        if ex.get("forced"):
            return ex["forced"], ex.get("statusSummary")
        jobs = self._exec_jobs(ex)
        failed = [j for j in jobs if j["status"] == "Failed"]
        if failed:
            return "Failed", ((failed[0]["result"] or {}).get("failureDetails") or {}).get("message")
        if any(j["status"] not in FINAL for j in jobs):
            return "InProgress", None
        pipe = self._pipelines[ex["pipelineName"]]
        if ex["polls"] >= pipe.get("executionPolls", 1) and now >= ex["startedAt"] + pipe.get("executionSeconds", 0):
            return pipe.get("executionResult", "Succeeded"), None
        if poll:
            ex["polls"] += 1
        return "InProgress", None

    def _op_StartPipelineExecution(self, params, ctx):
        pipe = self._pipeline(params["name"], ctx)
        token = params.get("clientRequestToken")
        if token and token in pipe["tokens"]:
            return {"pipelineExecutionId": pipe["tokens"][token]}
        if pipe.get("busy"):
            raise AwsError("ConflictException", "Your request cannot be handled because the pipeline is busy "
                           "handling ongoing activities. Try again later.")
        errors, seen = [], set()
        declared = {v["name"]: v.get("defaultValue") for v in pipe.get("variables") or []}
        for v in params.get("variables") or []:
            if v["name"] in seen:
                errors.append("Variable '%s' is specified more than once" % v["name"])
            seen.add(v["name"])
            if pipe.get("variables") is not None and v["name"] not in declared:
                errors.append("Variable '%s' is not declared in pipeline '%s'" % (v["name"], pipe["name"]))
        actions = {a["name"] for s in pipe["stages"] for a in s.get("actions", [])}
        for r in params.get("sourceRevisions") or []:
            if pipe["stages"] and r["actionName"] not in actions:
                errors.append("Source action '%s' does not exist in pipeline '%s'" % (r["actionName"], pipe["name"]))
        _raise_validation(errors)
        resolved = dict((k, v) for k, v in declared.items() if v is not None)
        resolved.update((v["name"], v["value"]) for v in params.get("variables") or [])
        ex = {"id": str(uuid.uuid4()), "pipelineName": pipe["name"], "startedAt": ctx.now, "polls": 0,
              "variables": resolved, "sourceRevisions": copy.deepcopy(params.get("sourceRevisions") or []),
              "trigger": ctx.access_key_id, "jobsOnStart": pipe.get("jobsOnStart", False)}
        self._executions[ex["id"]] = ex
        pipe["order"].append(ex["id"])
        if token:
            pipe["tokens"][token] = ex["id"]
        if ex["jobsOnStart"]:
            self._stage_jobs(ex, 0, ctx)
        return {"pipelineExecutionId": ex["id"]}

    def _op_GetPipelineExecution(self, params, ctx):
        pipe = self._pipeline(params["pipelineName"], ctx)
        ex = self._executions.get(params["pipelineExecutionId"])
        if ex is None or ex["pipelineName"] != pipe["name"]:
            raise AwsError("PipelineExecutionNotFoundException",
                           "Pipeline execution with id '%s' does not belong to the pipeline '%s'"
                           % (params["pipelineExecutionId"], pipe["name"]))
        status, summary = self._exec_status(ex, ctx.now, poll=True)
        out = {"pipelineName": pipe["name"], "pipelineVersion": pipe["version"], "pipelineExecutionId": ex["id"],
               "status": status,
               "artifactRevisions": [{"name": r["actionName"], "revisionId": r["revisionValue"]}
                                     for r in ex["sourceRevisions"]],
               "variables": [{"name": k, "resolvedValue": v} for k, v in ex["variables"].items()],
               "trigger": {"triggerType": "StartPipelineExecution", "triggerDetail": ex["trigger"] or ""},
               "executionMode": "SUPERSEDED", "executionType": "STANDARD"}
        if summary:
            out["statusSummary"] = summary
        return {"pipelineExecution": out}

    def _op_GetPipelineState(self, params, ctx):
        pipe = self._pipeline(params["name"], ctx)
        ex = self._executions[pipe["order"][-1]] if pipe["order"] else None
        status = self._exec_status(ex, ctx.now)[0] if ex else None
        jobs = self._exec_jobs(ex) if ex else []
        names = [s["name"] for s in pipe["stages"]]
        current = len(names) - 1
        if status in ("InProgress", "Failed"):
            want = "Failed" if status == "Failed" else None
            marks = [names.index(j["data"]["pipelineContext"]["stage"]["name"]) for j in jobs
                     if j["data"]["pipelineContext"]["stage"]["name"] in names
                     and (j["status"] == want if want else j["status"] not in FINAL)]
            current = min(marks) if marks else (0 if status == "InProgress" else current)
        stages = []
        for i, stage in enumerate(pipe["stages"]):
            st = {"stageName": stage["name"], "inboundTransitionState": {"enabled": True}, "actionStates": []}
            sstat = None
            if status is not None:
                if status in ("InProgress", "Failed"):
                    sstat = "Succeeded" if i < current else (status if i == current else None)
                else:
                    sstat = status if status in ("Succeeded", "Stopped", "Stopping", "Cancelled") else "Cancelled"
            if sstat:
                st["latestExecution"] = {"pipelineExecutionId": ex["id"], "status": sstat, "type": "STANDARD"}
            for a in stage.get("actions", []):
                ast = {"actionName": a["name"]}
                mine = [j for j in jobs if j["data"]["pipelineContext"]["action"]["name"] == a["name"]
                        and j["data"]["pipelineContext"]["stage"]["name"] == stage["name"]]
                if mine:
                    ast["latestExecution"] = self._action_execution(mine[-1])
                elif sstat:
                    ast["latestExecution"] = {"status": {"Succeeded": "Succeeded", "Failed": "Failed",
                                                         "InProgress": "InProgress"}.get(sstat, "Abandoned"),
                                              "lastStatusChange": ex["startedAt"]}
                st["actionStates"].append(ast)
            stages.append(st)
        return {"pipelineName": pipe["name"], "pipelineVersion": pipe["version"], "stageStates": stages,
                "created": pipe["created"], "updated": pipe["created"]}

    def _action_execution(self, job):
        parent = self._jobs.get(job["continuedFrom"]) if job["continuedFrom"] else None
        result = job["result"] or (parent["result"] if parent else None) or {}
        out = {"actionExecutionId": job["data"]["pipelineContext"]["action"]["actionExecutionId"],
               "status": job["status"] if job["status"] in ("Succeeded", "Failed") else "InProgress",
               "lastStatusChange": result.get("at", job["createdAt"]), "token": job["id"]}
        details = result.get("executionDetails") or {}
        for key in ("summary", "externalExecutionId", "percentComplete"):
            if key in details:
                out[key] = details[key]
        if job["status"] == "Failed" and result.get("failureDetails"):
            fd = result["failureDetails"]
            out["errorDetails"] = {"code": fd["type"], "message": fd["message"]}
        return out

    # ---------------------------------------------------------------- control
    def seed(self, body, ctx=None):
        now = ctx.now if ctx else time.time()
        out = {"pipelines": [], "jobs": [], "executions": []}
        with self._lock:
            for p in body.get("pipelines") or []:
                stages = copy.deepcopy(p.get("stages") or [])
                for s in stages:
                    for a in s.get("actions", []):
                        a.setdefault("actionTypeId", dict(LAMBDA_TYPE))
                        self._types.add(_type_key(a["actionTypeId"]))
                old = self._pipelines.get(p["name"])
                self._pipelines[p["name"]] = {
                    "name": p["name"], "version": p.get("version", 1), "stages": stages,
                    "variables": p.get("variables"), "created": old["created"] if old else now,
                    "executionPolls": p.get("executionPolls", 1), "executionSeconds": p.get("executionSeconds", 0),
                    "executionResult": p.get("executionResult", "Succeeded"), "busy": p.get("busy", False),
                    "jobsOnStart": p.get("jobsOnStart", False),
                    "tokens": old["tokens"] if old else {}, "order": old["order"] if old else []}
                out["pipelines"].append(p["name"])
            for t in body.get("actionTypes") or []:
                self._types.add(_type_key(t))
            for j in body.get("jobs") or []:
                data = copy.deepcopy(j.get("data") or {})
                data["actionTypeId"] = dict(j.get("actionTypeId") or data.get("actionTypeId") or LAMBDA_TYPE)
                data.setdefault("actionConfiguration", {"configuration": {}})
                data.setdefault("inputArtifacts", [])
                data.setdefault("outputArtifacts", [])
                data.setdefault("artifactCredentials", dict(ARTIFACT_CREDENTIALS))
                if j.get("pipelineName"):
                    data["pipelineContext"] = {
                        "pipelineName": j["pipelineName"], "stage": {"name": j.get("stageName", "Stage")},
                        "action": {"name": j.get("actionName", "Action"), "actionExecutionId": str(uuid.uuid4())}}
                    if j.get("pipelineExecutionId"):
                        data["pipelineContext"]["pipelineExecutionId"] = j["pipelineExecutionId"]
                job_id = j.get("id")
                if job_id is not None and not UUID_RE.match(job_id):
                    raise ValueError("seed jobs: id %r is not a lowercase UUID" % job_id)
                job = self._new_job(data, j.get("accountId"), now, job_id, j.get("status", "Created"))
                out["jobs"].append({"id": job["id"]})
            for e in body.get("executions") or []:
                pipe = self._pipelines[e["pipelineName"]]
                ex_id = e.get("pipelineExecutionId") or str(uuid.uuid4())
                ex = self._executions.get(ex_id)
                if ex is None:
                    ex = {"id": ex_id, "pipelineName": pipe["name"], "startedAt": now, "polls": 0,
                          "variables": {}, "sourceRevisions": [], "trigger": None, "jobsOnStart": False}
                    self._executions[ex_id] = ex
                    pipe["order"].append(ex_id)
                ex["forced"] = e.get("status")
                ex["statusSummary"] = e.get("statusSummary")
                out["executions"].append({"pipelineExecutionId": ex_id})
        return out

    def results(self):
        with self._lock:
            return copy.deepcopy(self._results)

    def job(self, job_id):
        with self._lock:
            job = self._jobs.get(job_id)
            return copy.deepcopy(job) if job else None

    def jobs(self):
        with self._lock:
            return copy.deepcopy(list(self._jobs.values()))

    def lambda_event(self, job_id=None, ctx=None):
        with self._lock:
            if job_id is None:
                job = next((j for j in self._jobs.values() if j["status"] == "Created"
                            and _type_key(j["data"]["actionTypeId"]) == _type_key(LAMBDA_TYPE)), None)
            else:
                job = self._jobs.get(job_id)
            if job is None:
                return None
            if job["status"] in ("Created", "Dispatched"):
                job["status"] = "InProgress"
            return {"CodePipeline.job": {"id": job["id"], "accountId": self._account(job, ctx),
                                         "data": self._job_data(job, ctx, lambda_shape=True)}}

    def control(self, method, path, body, ctx):
        """/_ferry/codepipeline: POST "" or /seed; GET "" ({"jobs", "results"}), /results, /jobs,
        /jobs/<id>; POST /lambda-event {"jobId"?} -> {"event": ... or null}; POST /reset."""
        body = body or {}
        if method == "POST" and path in ("", "/seed"):
            try:
                return self.seed(body, ctx)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise AwsError("BadRequest", "invalid CodePipeline seed body: %r" % e) from None
        if method == "GET" and path == "":
            return {"jobs": self.jobs(), "results": self.results()}
        if method == "GET" and path == "/results":
            return {"results": self.results()}
        if method == "GET" and path == "/jobs":
            return {"jobs": self.jobs()}
        if method == "GET" and path.startswith("/jobs/"):
            job = self.job(path[len("/jobs/"):])
            if job is None:
                raise AwsError("NotFound", "no job %s" % path[len("/jobs/"):], 404)
            return job
        if method == "POST" and path == "/lambda-event":
            return {"event": self.lambda_event(body.get("jobId"), ctx)}
        if method == "POST" and path == "/reset":
            self.reset()
            return {}
        raise AwsError("NotFound", "no CodePipeline control endpoint %s %s" % (method, path), 404)


SERVICE = CodePipeline()
