-- kube_wait_spec.lua: client:wait against the loopback Kubernetes double —
-- every condition's success and failure path, with the double's controllers
-- rolling objects forward or failing them on purpose (/_ferry/controllers:
-- crashloop, progress_deadline, pvc_pending, job_fail, snapshot_error, ...),
-- and exact rollout branches from objects seeded with a status while the
-- controllers are paused. The double's request log shows that waits are
-- watch-driven: one LIST and one WATCH, never a polling loop of GETs.
local errors = require("errors")
local ks = require("kube_support")
local support = require("support")
local task = require("task")

local function labels(name) return {app = name} end

local function pod_template(name, containers)
  return {metadata = {labels = labels(name)},
          spec = {containers = containers or {{name = "app", image = "registry.example/app:1"}}}}
end

local function deployment(name, replicas)
  return {apiVersion = "apps/v1", kind = "Deployment", metadata = {name = name},
          spec = {replicas = replicas, selector = {matchLabels = labels(name)}, template = pod_template(name)}}
end

local function statefulset(name, replicas, strategy)
  return {apiVersion = "apps/v1", kind = "StatefulSet", metadata = {name = name},
          spec = {replicas = replicas, serviceName = name, selector = {matchLabels = labels(name)},
                  template = pod_template(name), updateStrategy = strategy}}
end

local function pod(name, containers)
  return {apiVersion = "v1", kind = "Pod", metadata = {name = name, labels = labels(name)},
          spec = pod_template(name, containers).spec}
end

local function pvc(name)
  return {apiVersion = "v1", kind = "PersistentVolumeClaim", metadata = {name = name},
          spec = {accessModes = {"ReadWriteOnce"}, resources = {requests = {storage = "1Gi"}}}}
end

local function job(name)
  return {apiVersion = "batch/v1", kind = "Job", metadata = {name = name},
          spec = {backoffLimit = 1, template = {metadata = {labels = labels(name)},
                  spec = {restartPolicy = "Never", containers = {{name = "run", image = "registry.example/job:1"}}}}}}
end

local function configmap(name, data)
  return {apiVersion = "v1", kind = "ConfigMap", metadata = {name = name}, data = data or {}}
end

local function csi_snapshot(name, claim)
  return {apiVersion = "snapshot.storage.k8s.io/v1", kind = "VolumeSnapshot", metadata = {name = name},
          spec = {source = {persistentVolumeClaimName = claim}}}
end

local function stork_snapshot(name, claim)
  return {apiVersion = "volumesnapshot.external-storage.k8s.io/v1", kind = "VolumeSnapshot",
          metadata = {name = name}, spec = {persistentVolumeClaimName = claim}}
end

local CSI = "volumesnapshot.snapshot.storage.k8s.io/"
local STORK = "volumesnapshot.volumesnapshot.external-storage.k8s.io/"

describe("kube wait", function()
  local client, ns

  before_each(function()
    client, ns = ks.setup("wait")
  end)

  -- Seeds objects into the namespace exactly as given, status included.
  local function seed(...)
    local objs = {...}
    for _, o in ipairs(objs) do o.metadata.namespace = ns end
    ks.control(client, "POST", "seed", {objects = objs})
  end

  -- The error client:wait raises, checked to have this code.
  local function wait_error(code, res, cond, opts)
    local err = support.raised(client.wait, client, res, cond, opts)
    assert.is_true(errors.is(err, code), tostring(err))
    return err
  end

  local function expect_message(err, text)
    assert.truthy(support.contains(err.message, text), ("%q not in %q"):format(text, err.message))
  end

  -- Runs the wait in a task and returns it once the double has its watch.
  local function wait_in_background(res, cond, opts, resource)
    local t = task.spawn(function() return client:wait(res, cond, opts) end)
    assert.truthy(support.wait_for(10, function() return ks.count(client, ns, resource, "watch") > 0 end),
                  "the wait never started watching")
    return t
  end

  describe("rollout", function()
    it("returns a Deployment once all its replicas are updated and available, from one LIST and one WATCH", function()
      ks.controllers(client, {rollout_step_delay = 0.05})
      client:create(deployment("web", 3))
      local d = client:wait("deployment/web", "rollout", {timeout = 30})
      assert.equal(3, d.status.availableReplicas)
      assert.equal(3, d.status.updatedReplicas)
      assert.truthy(d.status.observedGeneration >= d.metadata.generation)
      assert.equal(0, ks.count(client, ns, "deployments.apps", "get"))
      assert.equal(1, ks.count(client, ns, "deployments.apps", "list"))
      local w = ks.requests(client, ns, function(r) return r.resource == "deployments.apps" and r.verb == "watch" end)
      assert.equal(1, #w)
      assert.equal("metadata.name=web", ks.query(w[1]).fieldSelector)
      assert.truthy(w[1].events >= 2, "the rollout was seen through several watch events")
    end)

    it("treats a Deployment that does not exist yet as not yet there", function()
      local t = wait_in_background("deployment/web", "rollout", {timeout = 30}, "deployments.apps")
      client:create(deployment("web", 1))
      assert.equal(1, task.wait(t).status.availableReplicas)
    end)

    it("fails at once on ProgressDeadlineExceeded with kubectl's message", function()
      ks.controllers(client, {progress_deadline = {"web"}, progress_deadline_delay = 0.2})
      client:create(deployment("web", 2))
      local err = wait_error("failed", "deployment/web", "rollout", {timeout = 60})
      expect_message(err, 'deployment "web" exceeded its progress deadline')
      assert.equal("ProgressDeadlineExceeded", err.reason)
      assert.equal("Deployment", err.last.kind)
    end)

    it("reports kubectl's waiting message on timeout", function()
      ks.controllers(client, {not_ready = {"web"}})
      client:create(deployment("web", 2))
      local err = wait_error("timeout", "deployment/web", "rollout", {timeout = 1})
      expect_message(err, 'Waiting for deployment "web" rollout to finish: 0 of 2 updated replicas are available...')
      assert.equal("web", err.last.metadata.name)
    end)

    it("waits for the controller to observe the new generation", function()
      ks.controllers(client, {paused = true})
      client:create(deployment("web", 1))
      local err = wait_error("timeout", "deployment/web", "rollout", {timeout = 0.5})
      expect_message(err, "Waiting for deployment spec update to be observed...")
    end)

    it("fails when the Deployment is deleted while waiting", function()
      ks.controllers(client, {not_ready = {"web"}})
      client:create(deployment("web", 1))
      local t = wait_in_background("deployment/web", "rollout", {timeout = 30}, "deployments.apps")
      client:delete("deployment/web")
      local ok, err = pcall(task.wait, t)
      assert.is_false(ok)
      assert.is_true(errors.is(err, "failed"), tostring(err))
      expect_message(err, 'deployment "web" was deleted')
    end)

    it("returns a StatefulSet once its pods are ready (the partitioned branch the server's default takes)", function()
      client:create(statefulset("db", 2))
      local s = client:wait("statefulset/db", "rollout", {timeout = 30})
      assert.equal(2, s.status.readyReplicas)
      assert.equal(0, s.spec.updateStrategy.rollingUpdate.partition)
    end)

    it("follows a StatefulSet partition until the pods above it are updated", function()
      ks.controllers(client, {paused = true})
      local strategy = {type = "RollingUpdate", rollingUpdate = {partition = 1}}
      local s = statefulset("db", 3, strategy)
      s.status = {observedGeneration = 1, replicas = 3, readyReplicas = 3, updatedReplicas = 1,
                  currentRevision = "db-1", updateRevision = "db-2"}
      seed(s)
      local err = wait_error("timeout", "statefulset/db", "rollout", {timeout = 0.5})
      expect_message(err, "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...")

      local t = wait_in_background("statefulset/db", "rollout", {timeout = 30}, "statefulsets.apps")
      s.status.updatedReplicas = 2
      seed(s)
      assert.equal(2, task.wait(t).status.updatedReplicas)
    end)

    it("refuses a StatefulSet with the OnDelete strategy, as kubectl does", function()
      ks.controllers(client, {paused = true})
      local s = statefulset("db", 1, {type = "OnDelete"})
      s.status = {observedGeneration = 1, replicas = 1, readyReplicas = 1}
      seed(s)
      local err = wait_error("failed", "statefulset/db", "rollout", {timeout = 10})
      expect_message(err, "rollout status is only available for RollingUpdate strategy type")
    end)

    it("follows a DaemonSet until its updated pods are available", function()
      ks.controllers(client, {paused = true})
      local ds = {apiVersion = "apps/v1", kind = "DaemonSet", metadata = {name = "agent"},
                  spec = {selector = {matchLabels = labels("agent")}, template = pod_template("agent"),
                          updateStrategy = {type = "RollingUpdate"}},
                  status = {observedGeneration = 1, desiredNumberScheduled = 2, updatedNumberScheduled = 2,
                            numberAvailable = 1}}
      seed(ds)
      local err = wait_error("timeout", "daemonset/agent", "rollout", {timeout = 0.5})
      expect_message(err, 'Waiting for daemon set "agent" rollout to finish: 1 of 2 updated pods are available...')

      local t = wait_in_background("daemonset/agent", "rollout", {timeout = 30}, "daemonsets.apps")
      ds.status.numberAvailable = 2
      seed(ds)
      assert.equal(2, task.wait(t).status.numberAvailable)
    end)

    it("refuses kinds that have no rollout", function()
      client:create(configmap("c"))
      local err = support.raised(client.wait, client, "configmap/c", "rollout", {timeout = 1})
      assert.truthy(support.contains(tostring(err), "rollout applies to Deployment, StatefulSet and DaemonSet"))
    end)
  end)

  describe("ready (pods)", function()
    it("returns a Pod once its Ready condition is True", function()
      client:create(pod("p"))
      local p = client:wait("pod/p", "ready", {timeout = 30})
      local ready
      for _, c in ipairs(p.status.conditions) do
        if c.type == "Ready" then ready = c.status end
      end
      assert.equal("True", ready)
    end)

    it("keeps waiting through CrashLoopBackOff and reports it on timeout", function()
      ks.controllers(client, {crashloop = {"p"}})
      client:create(pod("p"))
      local err = wait_error("timeout", "pod/p", "ready", {timeout = 1.5})
      expect_message(err, 'container "app" is waiting: CrashLoopBackOff')
      assert.equal("CrashLoopBackOff", err.reason)
      assert.equal("p", err.last.metadata.name)
    end)

    it("reports an image pull error on timeout", function()
      ks.controllers(client, {image_pull_error = {"p"}})
      client:create(pod("p"))
      local err = wait_error("timeout", "pod/p", "ready", {timeout = 1})
      assert.truthy(err.reason == "ErrImagePull" or err.reason == "ImagePullBackOff", err.reason)
      expect_message(err, 'container "app" is waiting: ')
    end)

    it("fails at once for a pod that has terminated", function()
      ks.controllers(client, {paused = true})
      local p = pod("p")
      p.status = {phase = "Failed", reason = "Evicted", message = "The node was low on resource: memory."}
      seed(p)
      local err = wait_error("failed", "pod/p", "ready", {timeout = 30})
      expect_message(err, 'pod "p" is Failed and will not become ready: Evicted: The node was low on resource')
    end)

    it("reports a missing pod as not found on timeout rather than failing at once", function()
      local err = wait_error("timeout", "pod/nope", "ready", {timeout = 0.5})
      expect_message(err, 'waiting for pod "nope" to be ready: not found')
      assert.is_nil(err.last)
    end)

    it("checks once with timeout 0", function()
      local err = wait_error("timeout", "pod/nope", "ready", {timeout = 0})
      expect_message(err, "not found")
      assert.equal(1, ks.count(client, ns, "pods", "get"))
      assert.equal(0, ks.count(client, ns, "pods", "watch"))
    end)
  end)

  describe("bound", function()
    it("returns a PVC once it is Bound", function()
      client:create(pvc("data"))
      local c = client:wait("pvc/data", "bound", {timeout = 30})
      assert.equal("Bound", c.status.phase)
      assert.is_string(c.spec.volumeName)
    end)

    it("reports a Pending PVC's latest event on timeout", function()
      ks.controllers(client, {pvc_pending = {data = {reason = "ProvisioningFailed",
                                                     message = "no capacity left in pool px-pool-1"}}})
      client:create(pvc("data"))
      local err = wait_error("timeout", "pvc/data", "bound", {timeout = 1})
      expect_message(err, "phase Pending; last event: ProvisioningFailed: no capacity left in pool px-pool-1")
      assert.equal("Pending", err.last.status.phase)
    end)

    it("fails at once when the claim is Lost", function()
      ks.controllers(client, {pvc_lost = {"data"}})
      client:create(pvc("data"))
      client:wait("pvc/data", function(c) return c.status and c.status.phase == "Lost" end, {timeout = 30})
      local err = wait_error("failed", "pvc/data", "bound", {timeout = 30})
      expect_message(err, 'persistentvolumeclaim "data" is Lost')
      assert.equal("Lost", err.reason)
    end)
  end)

  describe("complete and failed (jobs)", function()
    it("returns a Job once it is Complete", function()
      client:create(job("j"))
      local j = client:wait("job/j", "complete", {timeout = 30})
      assert.equal(1, j.status.succeeded)
    end)

    it("fails at once when a Job waited on to complete has failed", function()
      ks.controllers(client, {job_fail = {"j"}})
      client:create(job("j"))
      local err = wait_error("failed", "job/j", "complete", {timeout = 60})
      expect_message(err, 'job "j" is Failed: BackoffLimitExceeded')
      assert.equal("BackoffLimitExceeded", err.reason)
    end)

    it("returns a Job waited on to fail once it has, and fails at once if it completed", function()
      ks.controllers(client, {job_fail = {"bad"}})
      client:create(job("bad"))
      assert.equal("bad", client:wait("job/bad", "failed", {timeout = 60}).metadata.name)
      client:create(job("good"))
      local err = wait_error("failed", "job/good", "failed", {timeout = 60})
      expect_message(err, 'job "good" is Complete')
    end)
  end)

  describe("deleted", function()
    it("returns once the object is deleted", function()
      client:create(configmap("c"))
      local t = wait_in_background("configmap/c", "deleted", {timeout = 30}, "configmaps")
      client:delete("configmap/c")
      local last = task.wait(t)
      assert.equal("c", last.metadata.name)
    end)

    it("returns at once when the object does not exist", function()
      assert.is_nil(client:wait("configmap/none", "deleted", {timeout = 30}))
      assert.equal(0, ks.count(client, ns, "configmaps", "watch"))
    end)

    it("counts an object re-created under another uid as deleted", function()
      local old = client:create(configmap("c"))
      client:delete("configmap/c")
      client:create(configmap("c"))
      local again = client:wait({apiVersion = "v1", kind = "ConfigMap",
                                 metadata = {name = "c", namespace = ns, uid = old.metadata.uid}}, "deleted",
                                {timeout = 30})
      assert.are_not.equal(old.metadata.uid, again.metadata.uid)
    end)

    it("waits out a Terminating namespace and reports it on timeout", function()
      ks.control(client, "POST", "config", {namespace_delay = 0.3})
      local gone = "gone-" .. ns
      client:ensure_namespace(gone)
      client:create({apiVersion = "v1", kind = "ConfigMap", metadata = {name = "c", namespace = gone}})
      client:delete("namespace/" .. gone)
      local err = wait_error("timeout", "namespace/" .. gone, "deleted", {timeout = 0.1})
      expect_message(err, "deletion started at")
      client:wait("namespace/" .. gone, "deleted", {timeout = 30})
      assert.is_false(client:exists("namespace/" .. gone))
    end)
  end)

  describe("condition=Type[=Status]", function()
    it("waits for a condition, True by default, matching type and status in any case", function()
      client:create(deployment("web", 1))
      client:wait("deployment/web", "condition=Available", {timeout = 30})
      local d = client:wait("deployment/web", "condition=available=true", {timeout = 30})
      assert.equal("web", d.metadata.name)
      local err = wait_error("timeout", "deployment/web", "condition=Available=False", {timeout = 0.5})
      expect_message(err, "condition Available=True")
    end)

    it("ignores a condition older than the object's generation", function()
      ks.controllers(client, {paused = true})
      local d = deployment("web", 1)
      d.status = {observedGeneration = 0,
                  conditions = {{type = "Available", status = "True", reason = "MinimumReplicasAvailable"}}}
      seed(d)
      local err = wait_error("timeout", "deployment/web", "condition=Available", {timeout = 0.5})
      expect_message(err, "is for generation 0")
    end)

    it("reports a missing condition", function()
      client:create(configmap("c"))
      local err = wait_error("timeout", "configmap/c", "condition=Ready", {timeout = 0.3})
      expect_message(err, "no Ready condition yet")
    end)
  end)

  describe("predicate", function()
    it("returns once the predicate holds, re-checked on every change", function()
      client:create(configmap("c", {step = "0"}))
      local t = wait_in_background("configmap/c", function(obj)
        return obj.data.step == "2", "step is " .. obj.data.step
      end, {timeout = 30}, "configmaps")
      client:patch("configmap/c", {data = {step = "1"}})
      client:patch("configmap/c", {data = {step = "2"}})
      assert.equal("2", task.wait(t).data.step)
      assert.equal(1, ks.count(client, ns, "configmaps", "list"))
    end)

    it("reports the predicate's message on timeout", function()
      client:create(configmap("c", {step = "0"}))
      local err = wait_error("timeout", "configmap/c", function(obj)
        return false, "step is " .. obj.data.step
      end, {timeout = 0.3})
      expect_message(err, "step is 0")
    end)
  end)

  describe("snapshots", function()
    it("returns a CSI VolumeSnapshot once readyToUse, even while its PVC was still binding", function()
      ks.controllers(client, {pvc_bind_delay = 0.4})
      client:create(pvc("data"))
      client:create(csi_snapshot("snap", "data"))
      local s = client:wait(CSI .. "snap", "snapshot-ready", {timeout = 30})
      assert.is_true(s.status.readyToUse)
      assert.equal("snap", client:wait(CSI .. "snap", "ready", {timeout = 30}).metadata.name)
    end)

    it("fails at once on a CSI snapshot error with its message", function()
      ks.controllers(client, {snapshot_error = {snap = {message = "rpc error: pool is read-only"}}})
      client:create(pvc("data"))
      client:wait("pvc/data", "bound", {timeout = 30})
      client:create(csi_snapshot("snap", "data"))
      local err = wait_error("failed", CSI .. "snap", "snapshot-ready", {timeout = 30})
      expect_message(err, 'volumesnapshot "snap" failed: rpc error: pool is read-only')
    end)

    it("returns a STORK VolumeSnapshot once its Ready condition is True", function()
      client:create(pvc("data"))
      client:wait("pvc/data", "bound", {timeout = 30})
      client:create(stork_snapshot("snap", "data"))
      local s = client:wait(STORK .. "snap", "ready", {timeout = 30})
      assert.equal("volumesnapshot.external-storage.k8s.io/v1", s.apiVersion)
    end)

    it("fails at once on a STORK Error condition with its message", function()
      ks.controllers(client, {snapshot_error = {snap = {message = "px: volume is busy"}}})
      client:create(pvc("data"))
      client:wait("pvc/data", "bound", {timeout = 30})
      client:create(stork_snapshot("snap", "data"))
      local err = wait_error("failed", STORK .. "snap", "snapshot-ready", {timeout = 30})
      expect_message(err, 'volumesnapshot "snap" failed: px: volume is busy')
    end)
  end)
end)
