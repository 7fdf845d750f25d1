-- portworx_kube_spec.lua: the portworx module's "kube" backend against the
-- Kubernetes double, whose controllers and the Portworx double turn CSI and
-- STORK VolumeSnapshots into Portworx snapshots and restored PVCs into
-- clones: the shared backend behaviours for both snapshot APIs, then
-- restores across namespaces, the snapshot class, and STORK group snapshots.
local ks = require("kube_support")
local pxs = require("portworx_support")

describe("portworx kube backend", function()
  for _, api in ipairs({"csi", "stork"}) do
    describe("with " .. api:upper() .. " snapshots", function()
      pxs.behaves_like_a_backend({
        backend = "kube", tag = "-" .. api, extra = {snapshot_api = api},
        fail_snapshot = function(client) ks.controllers(client, {snapshot_error = {"data"}}) end,
      }, it, before_each)
    end)
  end

  describe("restores and classes", function()
    local client, ns

    before_each(function()
      client, ns = pxs.setup("px-kube")
    end)

    it("keeps CSI restores in the snapshot's namespace and points to STORK for others", function()
      local px = pxs.connect("kube", client)
      local snap = px:snapshot{volume = {namespace = ns, pvc = "data"}, name = "csi-1"}
      assert.equal("csi", snap.api)
      assert.equal("px-csi-snapclass", client:get("volumesnapshots.snapshot.storage.k8s.io/csi-1").spec
        .volumeSnapshotClassName)
      local err = pxs.raised("unsupported", px.restore_pvc, px, {snapshot = snap, namespace = "elsewhere", name = "s"})
      assert.truthy(err.message:find("stork", 1, true))
      local staging = px:restore_pvc{snapshot = snap, namespace = ns, name = "staging", size = "1Gi"}
      local claim = client:get("pvc/staging")
      assert.equal("csi-1", claim.spec.dataSource.name)
      assert.equal("2Gi", claim.spec.resources.requests.storage) -- never smaller than the source
      assert.equal(snap.id, pxs.px_volumes(client)[staging.volume].source.parent)
    end)

    it("restores a STORK snapshot into another namespace", function()
      local px = pxs.connect("kube", client, {snapshot_api = "stork"})
      local snap = px:snapshot{volume = {namespace = ns, pvc = "data"}, name = "stork-1", labels = {env = "stage"}}
      assert.equal("stork", snap.api)
      local target = ns .. "-staging"
      client:ensure_namespace(target)
      local staging = px:restore_pvc{snapshot = snap, namespace = target, name = "staging"}
      local claim = client:get("pvc/staging", {namespace = target})
      assert.equal("stork-snapshot-sc", claim.spec.storageClassName)
      assert.equal("stork-1", claim.metadata.annotations["snapshot.alpha.kubernetes.io/snapshot"])
      assert.equal(ns, claim.metadata.annotations["stork.libopenstorage.org/snapshot-source-namespace"])
      local vs = client:get("volumesnapshots.volumesnapshot.external-storage.k8s.io/stork-1")
      assert.equal(target, vs.metadata.annotations["stork.libopenstorage.org/snapshot-restore-namespaces"])
      assert.equal(snap.id, pxs.px_volumes(client)[staging.volume].source.parent)
      pxs.mount(client, target, "staging-mongo-0", "staging")
      assert.equal(staging.volume, px:volume_for_pvc(target, "staging").id)
    end)

    it("requires a VolumeSnapshotClass of the Portworx driver", function()
      client:delete("volumesnapshotclasses.snapshot.storage.k8s.io/px-csi-snapclass")
      local px = pxs.connect("kube", client)
      local err = pxs.raised("no_snapshot_class", px.snapshot, px, {volume = {namespace = ns, pvc = "data"},
                                                                     name = "x"})
      assert.truthy(err.message:find("pxd.portworx.com", 1, true))
      client:create{apiVersion = "snapshot.storage.k8s.io/v1", kind = "VolumeSnapshotClass",
                    metadata = {name = ns .. "-class"}, driver = "pxd.portworx.com", deletionPolicy = "Delete"}
      local snap = pxs.connect("kube", client):snapshot{volume = {namespace = ns, pvc = "data"}, name = "y"}
      assert.is_true(snap.ready)
    end)

    it("takes a STORK group snapshot and restores one of its members", function()
      pxs.claim(client, ns, "logs", {app = "mongo"})
      local px = pxs.connect("kube", client, {snapshot_api = "stork"})
      local lock, unlock = "mongosh --eval 'db.fsyncLock()'", "mongosh --eval 'db.fsyncUnlock()'"
      local group = px:group_snapshot{namespace = ns, name = "nightly", selector = {app = "mongo"}, timeout = 30,
                                      pre_rule = {selector = {app = "mongo"}, command = lock},
                                      post_rule = {selector = {app = "mongo"}, command = unlock}}
      assert.equal(2, #group.snapshots)
      local parents = {}
      for _, s in ipairs(group.snapshots) do
        assert.is_truthy(pxs.px_volumes(client)[s.id], "each member is a Portworx snapshot")
        parents[s.parent] = true
      end
      assert.is_true(parents[px:volume_for_pvc(ns, "data").id])
      assert.is_true(parents[px:volume_for_pvc(ns, "logs").id])
      assert.equal("nightly-pre", client:get("groupvolumesnapshots.stork.libopenstorage.org/nightly").spec.preExecRule)
      -- the lock ran in the pod before the snapshots were cut, the unlock after
      local ran = {}
      for _, c in ipairs(pxs.calls(client, "rule")) do
        ran[#ran + 1] = ("%s %s/%s: %s"):format(c.phase, c.namespace, c.pod or "-", c.command or c.error)
      end
      table.sort(ran)
      assert.same({("post %s/mongo-0: %s"):format(ns, unlock), ("pre %s/mongo-0: %s"):format(ns, lock)}, ran)
      local again = px:group_snapshot{namespace = ns, name = "nightly", selector = {app = "mongo"}, timeout = 30}
      assert.equal(2, #again.snapshots)
      local staging = px:restore_pvc{snapshot = group.snapshots[1], namespace = ns, name = "staging"}
      assert.equal(group.snapshots[1].id, pxs.px_volumes(client)[staging.volume].source.parent)
    end)
  end)
end)
