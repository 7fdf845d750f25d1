-- wait.lua (module "kube.wait"): client:wait, kubectl's readiness logic
-- (notes §4) driven by client:watch on the one object — no polling.
--
-- Each condition is a check(obj) → "done" | "fail" | "wait", message; the
-- message is kubectl's wording where kubectl has one (rollout status) and
-- otherwise the object's own reason and message (a container's
-- CrashLoopBackOff, a Job's BackoffLimitExceeded, a snapshot's error). The
-- latest message is what a timeout reports. A missing object is "not yet"
-- until the deadline, except for "deleted", where it is success (§9: kubectl
-- wait fails at once instead, which races apply).
local errors = require("errors")
local json = require("json")
local task = require("task")

local DEFAULT_TIMEOUT = 300 -- seconds, when opts.timeout is not given
local EVENT_TIMEOUT = 5 -- seconds allowed for the events lookup a Pending PVC's report makes

local function is_table(v) return type(v) == "table" end

-- v when it is a number, else 0 (absent and JSON null count as zero, as Go's zero values do).
local function num(v) return type(v) == "number" and v or 0 end

local function str(v) return type(v) == "string" and v or nil end

local function field(obj, ...)
  local v = obj
  for i = 1, select("#", ...) do
    if not is_table(v) then return nil end
    v = v[select(i, ...)]
  end
  if v == json.null then return nil end
  return v
end

local function conditions(obj)
  local list = field(obj, "status", "conditions")
  return is_table(list) and list or {}
end

-- The condition of this type (case-insensitive), or nil.
local function condition(obj, ctype)
  local want = ctype:lower()
  for _, c in ipairs(conditions(obj)) do
    if is_table(c) and type(c.type) == "string" and c.type:lower() == want then return c end
  end
  return nil
end

local function is_true(c) return c ~= nil and type(c.status) == "string" and c.status:lower() == "true" end

-- "Reason: message" from whatever of the two is there.
local function explain(reason, message)
  reason, message = str(reason), str(message)
  if reason and reason ~= "" and message and message ~= "" then return reason .. ": " .. message end
  return (reason ~= "" and reason) or message or ""
end

local function name_of(obj) return tostring(field(obj, "metadata", "name")) end

local function trim(s) return (s:gsub("%s+$", "")) end

-- Rollouts: kubectl's status viewers (kubectl pkg/polymorphichelpers/rollout_status.go).

local function deployment_rollout(d)
  local name = name_of(d)
  if num(field(d, "metadata", "generation")) <= num(field(d, "status", "observedGeneration")) then
    local cond = condition(d, "Progressing")
    if cond and cond.reason == "ProgressDeadlineExceeded" then
      local msg = ('deployment "%s" exceeded its progress deadline'):format(name)
      if str(cond.message) then msg = msg .. ": " .. cond.message end
      return "fail", msg, "ProgressDeadlineExceeded"
    end
    local replicas = field(d, "spec", "replicas")
    local updated = num(field(d, "status", "updatedReplicas"))
    if type(replicas) == "number" and updated < replicas then
      return "wait", ('Waiting for deployment "%s" rollout to finish: %d out of %d new replicas have been updated...')
        :format(name, updated, replicas)
    end
    local total = num(field(d, "status", "replicas"))
    if total > updated then
      return "wait", ('Waiting for deployment "%s" rollout to finish: %d old replicas are pending termination...')
        :format(name, total - updated)
    end
    local available = num(field(d, "status", "availableReplicas"))
    if available < updated then
      return "wait", ('Waiting for deployment "%s" rollout to finish: %d of %d updated replicas are available...')
        :format(name, available, updated)
    end
    return "done", ('deployment "%s" successfully rolled out'):format(name)
  end
  return "wait", "Waiting for deployment spec update to be observed..."
end

-- The apiserver always defaults updateStrategy.type to RollingUpdate, so a
-- missing type is taken as that (kubectl would read it as "" and refuse).
local function rolling(obj)
  local t = field(obj, "spec", "updateStrategy", "type")
  return t == nil or t == "RollingUpdate"
end

local function statefulset_rollout(s)
  if not rolling(s) then
    return "fail", ('statefulset "%s": rollout status is only available for RollingUpdate strategy type')
      :format(name_of(s))
  end
  local observed = num(field(s, "status", "observedGeneration"))
  if observed == 0 or num(field(s, "metadata", "generation")) > observed then
    return "wait", "Waiting for statefulset spec update to be observed..."
  end
  local replicas = field(s, "spec", "replicas")
  local ready = num(field(s, "status", "readyReplicas"))
  if type(replicas) == "number" and ready < replicas then
    return "wait", ("Waiting for %d pods to be ready..."):format(replicas - ready)
  end
  local updated = num(field(s, "status", "updatedReplicas"))
  local ru = field(s, "spec", "updateStrategy", "rollingUpdate")
  if is_table(ru) then
    local partition = ru.partition ~= json.null and ru.partition or nil
    if type(replicas) == "number" and type(partition) == "number" and updated < replicas - partition then
      return "wait", ("Waiting for partitioned roll out to finish: %d out of %d new pods have been updated...")
        :format(updated, replicas - partition)
    end
    return "done", ("partitioned roll out complete: %d new pods have been updated..."):format(updated)
  end
  local update_rev = tostring(field(s, "status", "updateRevision") or "")
  if update_rev ~= tostring(field(s, "status", "currentRevision") or "") then
    return "wait", ("waiting for statefulset rolling update to complete %d pods at revision %s...")
      :format(updated, update_rev)
  end
  return "done", ("statefulset rolling update complete %d pods at revision %s...")
    :format(num(field(s, "status", "currentReplicas")), update_rev)
end

local function daemonset_rollout(d)
  if not rolling(d) then
    return "fail", ('daemon set "%s": rollout status is only available for RollingUpdate strategy type')
      :format(name_of(d))
  end
  local name = name_of(d)
  if num(field(d, "metadata", "generation")) <= num(field(d, "status", "observedGeneration")) then
    local desired = num(field(d, "status", "desiredNumberScheduled"))
    local updated = num(field(d, "status", "updatedNumberScheduled"))
    if updated < desired then
      return "wait", ('Waiting for daemon set "%s" rollout to finish: %d out of %d new pods have been updated...')
        :format(name, updated, desired)
    end
    local available = num(field(d, "status", "numberAvailable"))
    if available < desired then
      return "wait", ('Waiting for daemon set "%s" rollout to finish: %d of %d updated pods are available...')
        :format(name, available, desired)
    end
    return "done", ('daemon set "%s" successfully rolled out'):format(name)
  end
  return "wait", "Waiting for daemon set spec update to be observed..."
end

local ROLLOUTS = {Deployment = deployment_rollout, StatefulSet = statefulset_rollout, DaemonSet = daemonset_rollout}

-- Pods: Ready condition True. A terminated pod can never become Ready, so
-- phase Failed or Succeeded fails at once; a container stuck in
-- CrashLoopBackOff or an image pull error keeps the wait going (it may
-- recover) but is what the status says.
local function container_trouble(pod)
  for _, key in ipairs({"initContainerStatuses", "containerStatuses"}) do
    local list = field(pod, "status", key)
    for _, cs in ipairs(is_table(list) and list or {}) do
      local waiting = field(cs, "state", "waiting")
      if is_table(waiting) and str(waiting.reason) and waiting.reason ~= "ContainerCreating"
        and waiting.reason ~= "PodInitializing" then
        return ('container "%s" is waiting: %s'):format(tostring(cs.name), explain(waiting.reason, waiting.message)),
               waiting.reason
      end
    end
  end
  return nil
end

local function pod_ready(pod)
  local ready = condition(pod, "Ready")
  if is_true(ready) then return "done", ('pod "%s" is ready'):format(name_of(pod)) end
  local phase = str(field(pod, "status", "phase")) or "Pending"
  if phase == "Failed" or phase == "Succeeded" then
    local why = explain(field(pod, "status", "reason"), field(pod, "status", "message"))
    return "fail", ('pod "%s" is %s and will not become ready%s'):format(name_of(pod), phase,
                                                                        why ~= "" and ": " .. why or ""), phase
  end
  local trouble, reason = container_trouble(pod)
  if trouble then return "wait", trouble, reason end
  if ready then
    local why = explain(ready.reason, ready.message)
    if why ~= "" then return "wait", ("phase %s, not ready: %s"):format(phase, why), str(ready.reason) end
  end
  return "wait", ("phase %s, not ready"):format(phase)
end

-- PVCs: phase Bound. Lost fails; Pending waits, and its report carries the
-- claim's latest event (the provisioner's reason), looked up only then.
local function pvc_bound(pvc)
  local phase = str(field(pvc, "status", "phase")) or "Pending"
  if phase == "Bound" then return "done", ('persistentvolumeclaim "%s" is bound'):format(name_of(pvc)) end
  if phase == "Lost" then
    return "fail", ('persistentvolumeclaim "%s" is Lost: its volume %s is gone'):format(
      name_of(pvc), tostring(field(pvc, "spec", "volumeName") or "")), "Lost"
  end
  return "wait", "phase " .. phase
end

-- Jobs: condition Complete or Failed; the other one fails at once.
local function job_counts(job)
  return ("active %d, succeeded %d, failed %d"):format(num(field(job, "status", "active")),
    num(field(job, "status", "succeeded")), num(field(job, "status", "failed")))
end

local function job_condition(want, other)
  return function(job)
    local c = condition(job, want)
    if is_true(c) then return "done", ('job "%s": %s'):format(name_of(job), explain(want, c.message)) end
    local bad = condition(job, other)
    if is_true(bad) then
      return "fail", ('job "%s" is %s: %s'):format(name_of(job), other, explain(bad.reason, bad.message)),
             str(bad.reason) or other
    end
    return "wait", job_counts(job)
  end
end

-- CSI snapshots (snapshot.storage.k8s.io): status.readyToUse; status.error fails.
local function csi_snapshot_ready(snap)
  if field(snap, "status", "readyToUse") == true then
    return "done", ('volumesnapshot "%s" is ready to use'):format(name_of(snap))
  end
  local err = field(snap, "status", "error")
  if is_table(err) and str(err.message) and err.message:find("is not yet bound", 1, true) then
    return "wait", err.message -- the snapshotter tries again once the claim is bound
  elseif is_table(err) and str(err.message) then
    return "fail", ('volumesnapshot "%s" failed: %s'):format(name_of(snap), err.message), "SnapshotError"
  end
  if field(snap, "status") == nil then return "wait", "no status yet" end
  return "wait", "readyToUse is false"
end

-- STORK snapshots (volumesnapshot.external-storage.k8s.io): a Ready
-- condition True; an Error (or Failed) condition True fails.
local function stork_snapshot_ready(snap)
  local ready = condition(snap, "Ready")
  if is_true(ready) then return "done", ('volumesnapshot "%s" is ready'):format(name_of(snap)) end
  for _, t in ipairs({"Error", "Failed"}) do
    local c = condition(snap, t)
    if is_true(c) then
      return "fail", ('volumesnapshot "%s" failed: %s'):format(name_of(snap), explain(c.reason, c.message)),
             str(c.reason) or t
    end
  end
  local pending = condition(snap, "Pending") or ready
  if pending then return "wait", explain(pending.type, pending.message) end
  return "wait", "no Ready condition yet"
end

-- kubectl wait --for=condition=Type[=Status] (pkg/cmd/wait/condition.go):
-- case-insensitive, default status True, and a condition older than the
-- object's generation does not count.
local function generic_condition(ctype, cstatus)
  local want = (cstatus or "True"):lower()
  return function(obj)
    local c = condition(obj, ctype)
    if not c then return "wait", ("no %s condition yet"):format(ctype) end
    local status = str(c.status) or ""
    local generation = field(obj, "metadata", "generation")
    if type(generation) == "number" then
      local observed = c.observedGeneration
      if type(observed) ~= "number" then observed = field(obj, "status", "observedGeneration") end
      if type(observed) == "number" and observed < generation then
        return "wait", ("condition %s=%s is for generation %d, the object is at %d"):format(c.type, status,
                                                                                          observed, generation)
      end
    end
    local why = explain(c.reason, c.message)
    local text = ("condition %s=%s%s"):format(tostring(c.type), status, why ~= "" and " (" .. why .. ")" or "")
    if status:lower() == want then return "done", text end
    return "wait", text, str(c.reason)
  end
end

local function predicate(fn)
  return function(obj)
    local ok, message = fn(obj)
    if ok then return "done", message end
    return "wait", message and tostring(message) or "the predicate is not met yet"
  end
end

local function group_of(api_version)
  return type(api_version) == "string" and api_version:match("^(.+)/[^/]+$") or ""
end

-- The check for a condition on a resource, and how a report names it.
local function checker(r, cond)
  local kind, group = r.kind, group_of(r.api_version)
  if type(cond) == "function" then return predicate(cond), "to satisfy the predicate" end
  if type(cond) ~= "string" then error("kube wait: condition must be a string or a function", 3) end
  local lc = cond:lower()
  if lc == "rollout" then
    local check = ROLLOUTS[kind]
    if not check then
      error(("kube wait: rollout applies to Deployment, StatefulSet and DaemonSet, not %s"):format(kind), 3)
    end
    return check, "to roll out", true
  elseif lc == "ready" or lc == "snapshot-ready" then
    if kind == "VolumeSnapshot" and group == "snapshot.storage.k8s.io" then
      return csi_snapshot_ready, "to be ready to use"
    elseif kind == "VolumeSnapshot" and group == "volumesnapshot.external-storage.k8s.io" then
      return stork_snapshot_ready, "to be ready"
    elseif lc == "snapshot-ready" then
      error(("kube wait: snapshot-ready applies to CSI and STORK VolumeSnapshots, not %s"):format(kind), 3)
    elseif kind == "Pod" then
      return pod_ready, "to be ready"
    end
    return generic_condition("Ready"), "to be ready"
  elseif lc == "bound" then
    if kind ~= "PersistentVolumeClaim" then error("kube wait: bound applies to PersistentVolumeClaims", 3) end
    return pvc_bound, "to be bound"
  elseif lc == "complete" then
    return job_condition("Complete", "Failed"), "to complete"
  elseif lc == "failed" then
    return job_condition("Failed", "Complete"), "to fail"
  elseif lc == "deleted" or lc == "delete" then
    return nil, "to be deleted"
  end
  local ctype, cstatus = cond:match("^condition=([^=]+)=(.+)$")
  ctype = ctype or cond:match("^condition=([^=]+)$")
  if not ctype then error(("kube wait: unknown condition %q"):format(cond), 3) end
  return generic_condition(ctype, cstatus), ("to have condition %s=%s"):format(ctype, cstatus or "True")
end

-- The newest event about a PVC: "Reason: message", or nil. One LIST with a
-- field selector, made only for a report, bounded by its own short timeout.
local function latest_event(client, pvc)
  local ns, name = field(pvc, "metadata", "namespace"), field(pvc, "metadata", "name")
  if not ns or not name then return nil end
  local ok, list = pcall(task.timeout, EVENT_TIMEOUT, client._request, client, {
    method = "GET", path = ("/api/v1/namespaces/%s/events"):format(ns),
    query = {fieldSelector = "involvedObject.name=" .. name}})
  if not ok or not is_table(list) or not is_table(list.items) then return nil end
  local best, best_at
  for _, ev in ipairs(list.items) do
    local involved = is_table(ev) and ev.involvedObject
    if is_table(involved) and (involved.kind == nil or involved.kind == "PersistentVolumeClaim") then
      local at = str(ev.lastTimestamp) or str(ev.eventTime) or str(field(ev, "metadata", "creationTimestamp")) or ""
      if not best or at >= best_at then best, best_at = ev, at end
    end
  end
  return best and explain(best.reason, best.message) or nil
end

return function(Client)
  ---Waits until resource meets condition, with kubectl's semantics, driven by
  ---a watch on the object (one LIST, then one WATCH held open). Conditions:
  ---"rollout" (Deployment, StatefulSet, DaemonSet), "ready" (Pod Ready;
  ---CSI/STORK VolumeSnapshot readiness; else condition Ready), "bound" (PVC),
  ---"complete" / "failed" (Job), "deleted", "condition=Type[=Status]",
  ---"snapshot-ready", or a predicate fn(obj) → true/false[, message]. A
  ---missing object is "not yet" until the deadline (except for "deleted").
  ---Raises {code = "failed"} at once when the object can no longer get there
  ---(ProgressDeadlineExceeded, a failed Job or Pod, a Lost PVC, a snapshot
  ---error) and {code = "timeout"} at the deadline; both carry `last` (the
  ---last object seen), `reason` and a message with the last status seen.
  ---@param resource kube.Resource "deployment/web", {apiVersion, kind, name, namespace} or an object
  ---@param cond string|fun(obj: table): boolean?, string?
  ---@param opts? kube.WaitOpts
  ---@return table? object the object in its final state (for "deleted": the last one seen, or nil)
  function Client:wait(resource, cond, opts)
    opts = opts or {}
    if not is_table(opts) then error("kube wait: opts must be a table", 2) end
    local timeout = opts.timeout or DEFAULT_TIMEOUT
    if type(timeout) ~= "number" or timeout < 0 then error("kube wait: timeout must be a number >= 0", 2) end
    local r = self:_resolve(resource, opts.namespace)
    if not r.name then error("kube wait: the resource needs a name (e.g. \"deployment/web\")", 2) end
    local check, phrase, is_rollout = checker(r, cond)
    local deleting = check == nil
    local what = ('%s "%s"'):format(tostring(r.kind):lower(), r.name)
    local uid = field(resource, "metadata", "uid")

    -- What the wait has seen: the last object, its status message and reason.
    local seen = {message = "not found", object = nil, reason = "NotFound"}
    local function note(obj, message, reason)
      seen.object, seen.message, seen.reason = obj, message, reason
    end
    local function failed(message, reason)
      error(errors.new{code = "failed", message = message, reason = reason, last = seen.object,
                       resource = what}, 0)
    end
    local function report()
      local message = seen.message
      if seen.object and r.kind == "PersistentVolumeClaim" and field(seen.object, "status", "phase") ~= "Bound" then
        local event = latest_event(self, seen.object)
        if event then message = message .. "; last event: " .. event end
      end
      return message
    end
    -- Returns true when done; raises when it can no longer happen.
    local function evaluate(obj)
      if deleting then
        local obj_uid = field(obj, "metadata", "uid")
        if uid and obj_uid and obj_uid ~= uid then -- deleted and created again
          seen.object = obj
          return true
        end
        uid = uid or obj_uid
        local since = field(obj, "metadata", "deletionTimestamp")
        local finalizers = field(obj, "metadata", "finalizers")
        local message = since and ("deletion started at %s"):format(since) or "still exists"
        if is_table(finalizers) and #finalizers > 0 then
          message = message .. "; finalizers: " .. table.concat(finalizers, ", ")
        end
        note(obj, message, since and "Terminating" or "Exists")
        return false
      end
      local state, message, reason = check(obj)
      note(obj, message and trim(message) or state, reason)
      if state == "done" then return true end
      if state == "fail" then failed(report(), reason or "Failed") end
      return false
    end

    if timeout == 0 then -- check once, as kubectl wait --timeout=0
      local ok, obj = pcall(self._request, self, {method = "GET", path = r.path})
      if not ok then
        if not (is_table(obj) and obj.status == 404) then error(obj, 0) end
        if deleting then return nil end
      elseif evaluate(obj) then
        return obj
      end
    else
      local deadline = task.now() + timeout
      local ok, err = pcall(self.watch, self, resource, {
        namespace = opts.namespace, timeout = timeout,
        _on_sync = function(count)
          if count > 0 then return false end
          if deleting then return true end
          if seen.object == nil then note(nil, "not found", "NotFound") end
          return false
        end,
      }, function(kind, obj)
        if kind == "BOOKMARK" then return false end
        if kind == "DELETED" then
          if deleting then
            seen.object = obj
            return true
          end
          if is_rollout then
            note(obj, "deleted", "Deleted")
            failed(("%s was deleted while waiting for it to roll out"):format(what), "Deleted")
          end
          note(obj, "deleted; waiting for it to be created again", "Deleted")
          return false
        end
        return evaluate(obj)
      end)
      if ok then return seen.object end
      if not (errors.is(err, "timeout") and task.now() >= deadline - 0.001) then error(err, 0) end
    end
    error(errors.new{code = "timeout", last = seen.object, reason = seen.reason, resource = what,
                     message = ("timed out after %gs waiting for %s %s: %s")
                       :format(timeout, what, phrase, report())}, 0)
  end
end
