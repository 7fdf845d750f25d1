---@meta kube
-- Kubernetes for workflows: a client from a kubeconfig (or the pod's service
-- account), discovery-based mapping of kinds to URLs, and the operations of
-- kubectl on plain tables: get, list, create, replace, apply (server-side),
-- patch, delete, ensure_namespace. Watches, waits, exec, logs and the service
-- proxy are methods of the same client.
--
-- Errors are Status-shaped error objects: `code` is the Status reason from the
-- server ("NotFound", "AlreadyExists", "Conflict", "Forbidden", "Invalid",
-- "Expired", "TooManyRequests", "InternalError", ...), or a lower-case client
-- code: a transport failure ("connect", "timeout", "tls", ...), "kubeconfig"
-- (a bad configuration, naming file and field), "auth" (an exec plugin
-- failed), "no_match" / "ambiguous" (a kind discovery cannot map), "manifest"
-- (bad manifest or undefined ${VAR}), "decode". Fields: `status` (HTTP
-- status), `reason`, `message`, `causes` (details.causes: {reason, message,
-- field}), `details`, `retryable`, `op` ("GET /api/v1/...").
--
-- Requests are retried on connection errors, 429 and 5xx where that is safe
-- (GET, PUT, DELETE, apply and merge patches; POST and JSON patches only on
-- 429 and refused connections), honouring Retry-After; a 401 refreshes the
-- credentials (exec plugin, token file) and retries once. `Warning` response
-- headers are logged with log.warn.

---A resource reference: "deployment/web", "deployments.apps/web", "pvc/data",
---"volumesnapshot.snapshot.storage.k8s.io/snap" (kind, plural or short name,
---optionally .group or .version.group), a bare type for collections ("pods"),
---an object {apiVersion, kind, metadata = {name, namespace}}, or
---{api_version?, kind, name?, namespace?}.
---@alias kube.Resource string|table

---@class kube.ConnectOpts
---@field kubeconfig? string|string[] only these files (they must exist); default KUBECONFIG, then ~/.kube/config, then in-cluster
---@field context? string default current-context
---@field namespace? string default: the context's, else "default"
---@field in_cluster? boolean only the pod's service account (KUBERNETES_SERVICE_HOST/PORT and its token, ca.crt, namespace; FERRY_SERVICEACCOUNT_DIR overrides the directory)

---@class kube.WriteOpts
---@field namespace? string for objects without metadata.namespace (default: the client's)
---@field dry_run? "server" sends dryRun=All: validated and admitted, not persisted
---@field field_manager? string default "ferry"

---@class kube.ListOpts
---@field namespace? string
---@field all_namespaces? boolean
---@field label_selector? string|table<string, string> "app=web,tier!=db" or {app = "web"}
---@field field_selector? string|table<string, string> "status.phase=Running" or {["metadata.name"] = "web"}
---@field limit? integer page size (default 500); every page is fetched

---@class kube.ApplyOpts: kube.WriteOpts
---@field force? boolean take over fields owned by other managers (force=true)
---@field vars? table<string, string|number|boolean> for manifest paths or YAML text
---@field crd_timeout? number seconds to wait for CRDs applied in the same call to be served (default 30)

---@class kube.PatchOpts: kube.WriteOpts
---@field type? "merge"|"strategic"|"json"|"apply" default "merge"
---@field force? boolean with type "apply"

---@class kube.DeleteOpts
---@field namespace? string
---@field dry_run? "server"
---@field propagation_policy? "Background"|"Foreground"|"Orphan" default "Background"
---@field grace_period? integer seconds
---@field preconditions? {uid?: string, resource_version?: string}
---@field ignore_not_found? boolean return nil instead of raising NotFound
---@field wait? boolean return once the object is gone (404 or replaced by another uid)
---@field timeout? number seconds to wait with wait = true (default 300)

---@class kube.ReplaceOpts: kube.WriteOpts
---@field attempts? integer tries on 409 Conflict (default 5)

---A connection to one cluster. Objects in and out are plain tables.
---@class kube.Client
---@field namespace string the default namespace
---@field timeout number seconds one request may take (default 60)
---@field max_retries integer retries of one request (default 5)
local Client = {}

local kube = {}

---The client class: kube.ops, kube.apply and the extensions (kube.watch,
---kube.wait, kube.exec, kube.logs) add their methods to it.
kube.Client = Client

---A client for a cluster. Without opts.kubeconfig: the files in KUBECONFIG
---(merged as kubectl merges them: the first file defining a name wins it, the
---first non-empty current-context wins), else ~/.kube/config, else in-cluster.
---Every kubeconfig auth form: certificate-authority(-data), client
---certificate and key (files or data, kept in memory), token, tokenFile
---(re-read every 60 s and after a 401), username/password,
---insecure-skip-tls-verify, tls-server-name, proxy-url, impersonation (as,
---as-groups, as-uid, as-user-extra) and exec plugins
---(client.authentication.k8s.io/v1 and v1beta1, cached until
---expirationTimestamp, re-run once on a 401; `aws eks get-token`, `ferry
---eks-token` and `aws-iam-authenticator token` are made in-process with
---aws.eks_token). A bad configuration raises a "kubeconfig" error naming the
---file and field (exit 2). Makes no request until the first call.
---@param opts? kube.ConnectOpts
---@return kube.Client
function kube.connect(opts) end

---The objects of manifests: a file path (.yaml, .yml, .json), YAML text
---(multi-document), an object table, or a list of those. `${NAME}` is replaced
---from vars as text before parsing (quote it where the value must stay a
---string); `$${` is a literal `${`; an undefined variable raises a "manifest"
---error naming it, the file and the line. `kind: List` is expanded.
---@param source string|table
---@param vars? table<string, string|number|boolean>
---@return table[]
function kube.manifests(source, vars) end

---The object; raises NotFound when it does not exist (see exists).
---@param res kube.Resource
---@param opts? {namespace?: string}
---@return table
function Client:get(res, opts) end

---Whether the object exists.
---@param res kube.Resource
---@param opts? {namespace?: string}
---@return boolean
function Client:exists(res, opts) end

---Every item of a collection ("pods", "deployments.apps", {kind = ...}), all
---pages (limit/continue; an expired continue restarts the list). Items carry
---kind and apiVersion. Also returns the list's metadata (resourceVersion).
---@param res kube.Resource
---@param opts? kube.ListOpts
---@return table[] items
---@return table metadata
function Client:list(res, opts) end

---Creates the object (POST); returns it as stored. AlreadyExists on a
---duplicate name. Not retried on 5xx.
---@param obj table
---@param opts? kube.WriteOpts
---@return table
function Client:create(obj, opts) end

---Replaces the object (PUT with metadata.resourceVersion, read first when
---absent). With a change function fn(current) → object or nil (changed in
---place): reads, changes, writes. On 409 Conflict it reads again and re-applies
---the change (or the object with the fresh resourceVersion), up to
---opts.attempts times.
---@param target table|kube.Resource an object, or a reference with fn
---@param fn? fun(current: table): table?
---@param opts? kube.ReplaceOpts
---@return table
---@overload fun(self: kube.Client, obj: table, opts?: kube.ReplaceOpts): table
function Client:replace(target, fn, opts) end

---Server-side apply (PATCH application/apply-patch+yaml, fieldManager
---"ferry"). Takes an object, a list of objects, or a manifest path / YAML text
---(with opts.vars). A list is applied in dependency order: Namespaces, CRDs,
---CRD-backed kinds, then built-in kinds in Helm's install order. Returns the
---applied object, or the list of them in input order.
---@param objects table|table[]|string
---@param opts? kube.ApplyOpts
---@return table|table[]
function Client:apply(objects, opts) end

---Patches the object; patch is a table (sent as JSON) or a string.
---@param res kube.Resource
---@param patch table|string
---@param opts? kube.PatchOpts
---@return table
function Client:patch(res, patch, opts) end

---Deletes the object (DeleteOptions body). Returns the server's answer: the
---object (now with deletionTimestamp) or a Status; nil when ignore_not_found
---and it was missing. With wait = true, returns once it is gone, using
---client:wait(res, "deleted") when the wait extension is present.
---@param res kube.Resource
---@param opts? kube.DeleteOpts
---@return table?
function Client:delete(res, opts) end

---Creates the namespace with these labels, or merges the labels into the
---existing one; a Terminating namespace of that name is waited out first.
---Idempotent. Returns the Namespace.
---@param name string
---@param labels? table<string, string>
---@param opts? {dry_run?: "server", timeout?: number}
---@return table
function Client:ensure_namespace(name, labels, opts) end

---The objects of manifests, as kube.manifests.
---@param source string|table
---@param vars? table<string, string|number|boolean>
---@return table[]
function Client:load(source, vars) end

-- Private interface for the extensions (kube.watch, kube.wait, kube.exec,
-- kube.logs), each a file returning function(Client) that adds methods:

---One API request: decoded JSON (raw text when accept is not JSON) and the
---http response. query values may be lists (repeated parameters); a table
---body is sent as JSON; dry_run adds dryRun=All; retry says whether 5xx and
---ambiguous connection errors may be retried (default for GET, HEAD, PUT,
---DELETE). Raises Status-shaped error objects.
---@param req {method?: string, path: string, query?: table, body?: string|table, content_type?: string, accept?: string, headers?: table<string, string>, dry_run?: "server"|boolean, retry?: boolean, timeout?: number}
---@return any body
---@return http.Response res
function Client:_request(req) end

---Request fields to merge into http.request / http.open / http.websocket:
---url (the base URL), headers (Authorization, Impersonate-*), ca_data,
---cert_data, key_data, insecure, resolve (tls-server-name), proxy. A fresh
---table each call; runs exec plugins and re-reads token files as needed.
---@return table
function Client:_http_options() end

---The absolute URL of an API path with an encoded query ({k = v or list}).
---@param path string
---@param query? table
---@return string
function Client:_url(path, query) end

---The URLs and mapping of a resource reference, via discovery.
---@param resource kube.Resource
---@param namespace? string used when the reference has none (default client.namespace)
---@return {path?: string, collection: string, all_namespaces: string, name?: string, namespace?: string, kind: string, api_version: string, resource: string, namespaced: boolean, group: string, version: string, verbs: string[]}
function Client:_resolve(resource, namespace) end

---After a 401: re-runs the exec plugin or re-reads the token file; true when
---the credentials may have changed.
---@return boolean
function Client:_refresh_auth() end

---The Status-shaped error of a refused stream (http.open answered non-2xx),
---from at most 64 KiB of its body.
---@param stream table an open http stream
---@param op string "GET /path", for the message
---@return table
function Client._stream_error(stream, op) end

---_resolve for a pod: "name", "pod/name", "pods/name", a Pod object or
---{name, namespace}; namespace, when given, wins over the pod's own.
---@param pod string|table
---@param namespace? string
---@return table as _resolve
function Client:_resolve_pod(pod, namespace) end

---The container kubectl picks in a Pod object: wanted, else the one the
---kubectl.kubernetes.io/default-container annotation names, else the first.
---@param pod table
---@param wanted? string
---@return string?
function Client._pick_container(pod, wanted) end

---------------------------------------------------------------------------
-- Watches, waits, exec, logs and the service proxy (kube.watch, kube.wait,
-- kube.exec, kube.logs)

---@class kube.WatchOpts
---@field namespace? string for a namespaced kind (default: the client's)
---@field all_namespaces? boolean watch the kind in every namespace
---@field label_selector? string "app=web,tier!=db"
---@field field_selector? string "status.phase=Running"; a named resource adds metadata.name=NAME
---@field resource_version? string start after this version: no LIST, no ADDED for existing objects
---@field timeout? number seconds for the whole watch, fn included; then raises {code = "timeout", last}
---@field bookmarks? boolean ask for BOOKMARK events (default true)

---@class kube.WaitOpts
---@field timeout? number seconds (default 300); 0 checks once with a GET
---@field namespace? string for a reference without one (default: the client's)

---@class kube.ExecOpts
---@field container? string default: the kubectl.kubernetes.io/default-container annotation, else the first container
---@field stdin? string sent on channel 0, then closed (v5; v4 has no way to close it)
---@field timeout? number seconds for the whole command (default 600)
---@field namespace? string

---@class kube.ExecResult
---@field stdout string
---@field stderr string
---@field exit_code integer
---@field container string the container the command ran in

---@class kube.LogsOpts
---@field container? string default: as for exec
---@field tail? integer the last this many lines (tailLines)
---@field since? number|string seconds (sinceSeconds) or an RFC 3339 time (sinceTime)
---@field previous? boolean the previous, terminated container's log
---@field timestamps? boolean prefix each line with its RFC 3339 time
---@field limit_bytes? integer limitBytes
---@field follow? boolean keep streaming to fn until the container ends (needs fn)
---@field timeout? number seconds (default 300 for a plain read; none for follow)
---@field namespace? string

---@class kube.ProxyOpts
---@field port? integer|string the service port, by number or name
---@field scheme? "http"|"https" how the API server talks to the service (default "http")
---@field path? string "/health?verbose=1" (default "/")
---@field method? string default "GET"
---@field body? string|table a table is sent as JSON
---@field headers? table<string, string>
---@field namespace? string
---@field timeout? number seconds (default 60)
---@field retries? integer|false as for http.request

---Streams a kind's changes to fn, as client-go's Reflector does: a LIST
---(every page; each object to fn as ADDED), then a WATCH from the list's
---resourceVersion with bookmarks. A stream the server ends is watched again
---from the last version; 410 Gone re-lists and reports what changed meanwhile
---as synthetic events; connection errors, 429 and 5xx are retried a few
---times; any other ERROR event raises its Status. fn returning true stops it.
---@param resource kube.Resource a kind ("pods", "deployments.apps"), a named resource or an object
---@param opts? kube.WatchOpts
---@param fn fun(type: "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK", object: table): boolean?
---@return table? object the object of the event fn stopped on
---@return string? type that event's type
function Client:watch(resource, opts, fn) end

---Waits until the object meets cond, with kubectl's semantics, driven by a
---watch (one LIST, then one WATCH; no polling). cond: "rollout" (Deployment,
---StatefulSet incl. partitions, DaemonSet), "ready" (Pod Ready; CSI
---readyToUse; STORK Ready condition), "snapshot-ready", "bound" (PVC),
---"complete" / "failed" (Job), "deleted", "condition=Type[=Status]", or
---fn(obj) → ok[, message]. Raises {code = "failed"} as soon as it cannot
---happen (ProgressDeadlineExceeded, a Failed Job or Pod, a Lost PVC, a
---snapshot error) and {code = "timeout"} at the deadline; both carry `last`,
---`reason` and a message with the last status seen.
---@param resource kube.Resource
---@param cond string|fun(obj: table): boolean?, string?
---@param opts? kube.WaitOpts
---@return table? object its final state ("deleted": the last state seen, or nil)
function Client:wait(resource, cond, opts) end

---Runs argv in a pod's container over WebSocket (v5.channel.k8s.io, then
---v4), as kubectl exec does: argv goes as repeated command= parameters,
---never through a shell. A non-zero exit is returned in exit_code; a command
---that cannot run, or a connection lost before the exit status, raises
---{code = "exec_failed", stdout, stderr}; the deadline raises {code = "timeout"}.
---@param pod string|table "name", "pod/name", a Pod object or {name, namespace}
---@param argv string[]
---@param opts? kube.ExecOpts
---@return kube.ExecResult
function Client:exec(pod, argv, opts) end

---A pod's log: without fn, the text; with fn, fn(line) for every line as it
---arrives (with follow until the container ends, fn returns true or the timeout).
---@param pod string|table "name", "pod/name", a Pod object or {name, namespace}
---@param opts? kube.LogsOpts
---@param fn? fun(line: string): boolean?
---@return string? text without fn
function Client:logs(pod, opts, fn) end

---One request through the API server's service proxy,
---/api/v1/namespaces/NS/services/[https:]NAME[:PORT]/proxy/PATH. Returns the
---answer whatever its status.
---@param service string|table "name", "service/name", "svc/name" or a Service object
---@param opts? kube.ProxyOpts
---@return http.Response
function Client:proxy(service, opts) end

return kube
