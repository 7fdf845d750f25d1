"""pxctl.py: `pxctl` as the Portworx double answers it inside the Portworx pod
(label name=portworx, container portworx; ref/notes/portworx.md §3).

Registered with streams.register_command("pxctl", ...), so `kubectl exec POD -c
portworx -- /opt/pwx/bin/pxctl ...` (also behind `env VAR=... ` or `sh -c '...'`)
runs here, on the same state as the SDK gateway. In any other pod or container
pxctl does not exist (the exec falls through to "executable file not found").

Commands (global flags -j/--json, --raw, --ssl, --context X, --port N anywhere):
    volume list|l [-s|--snapshot] [-a|--all] [-p|--parent VOL] [-l|--label k=v,...]
                  [--name NAME] [-v|--volumes ID,...]      JSON array with -j, else columns
    volume inspect|i ID|NAME...                              JSON array (-j) or text
    volume snapshot create|c --name N [--label k=v,...] VOL  "Volume snap successful: ID"
    volume clone --name N [--label k=v,...] VOL              "Volume clone successful: ID"
    volume restore --snapshot|-s SNAP VOL                    "Successfully started restoring volume VOL from SNAP."
    volume delete|d|rm VOL                                   prompts; "Y" on stdin deletes
    snap create|c --name N [--label k=v,...] VOL             "Volume successfully snapped: ID"  (PX 1.x)
    snap list|l [VOL]                                        JSON array of snapshots (-j) or columns
    snap delete|d|rm SNAP                                    "Snapshot SNAP successfully deleted."
    -v|--version                                             "pxctl version <x>"
JSON is pxctl's (model.pxctl_volume): defaults emitted, "status": "up",
"state": "attached"|"detached", "format": "ext4".

When the double is secured (and pxctl_auth is "when_secured", the default) a valid
token is needed in PXCTL_AUTH_TOKEN (pass it as `env PXCTL_AUTH_TOKEN=... pxctl ...`).
Faults with op "pxctl" apply: error (exit 1, the message on stderr), slow.
"""

import json
import re
import time

from . import model
from . import tokens
from .model import SdkError

GLOBAL_FLAGS_WITH_VALUE = ("--context", "--port", "--ca", "--cert", "--key", "--output-type", "-o")
GLOBAL_SWITCHES = ("-j", "--json", "--raw", "--ssl", "--color")


class PxctlError(Exception):
    def __init__(self, message, code=1):
        super().__init__(message)
        self.message = message
        self.code = code


def _labels(text):
    out = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        k, sep, v = part.partition("=")
        if not sep:
            raise PxctlError(f"Invalid label {part!r}: expected key=value")
        out[k.strip()] = v.strip()
    return out


def _size_text(n):
    for unit, div in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            val = n / div
            return f"{val:.0f} {unit}" if val.is_integer() else f"{val:.1f} {unit}"
    return f"{n} B"


class Pxctl:
    def __init__(self, px):
        self.px = px
        self.state = px.state
        self.auth = "when_secured"  # or "never"

    # -- the exec entry point -------------------------------------------------------------------

    def __call__(self, store, ns, pod, container, argv, stdin):
        labels = ((pod.get("metadata") or {}).get("labels") or {})
        if labels.get("name") != "portworx" or container != "portworx":
            return None  # no pxctl in this container
        env, words = {}, list(argv)
        if words and words[0].rsplit("/", 1)[-1] == "env":
            words = words[1:]
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            k, _, v = words.pop(0).partition("=")
            env[k] = v
        entry = {"method": "EXEC", "op": "pxctl", "argv": words, "pod": f"{ns}/{pod['metadata']['name']}", "container": container,
                 "env": sorted(env), "token": bool(env.get("PXCTL_AUTH_TOKEN"))}  # names only: no secrets in the log
        gw = self.px.gateway
        fault = gw.faults.take("EXEC", "pxctl", "pxctl")
        if fault is not None:
            entry["fault"] = fault["kind"]
            if fault["kind"] == "slow":
                time.sleep(fault["delay_ms"] / 1000.0)
            elif fault["kind"] in ("error", "drop", "unauthorized"):
                entry["exit"] = 1
                gw.calls.add(entry)
                return "", (fault["message"] or "Ferry fault: injected pxctl failure") + "\n", 1
        try:
            out = self.run(words[1:], env, stdin or b"")
            entry["exit"] = 0
            gw.calls.add(entry)
            return out, "", 0
        except PxctlError as e:
            entry["exit"] = e.code
            entry["error"] = e.message
            gw.calls.add(entry)
            return getattr(e, "stdout", ""), e.message.rstrip("\n") + "\n", e.code

    # -- parsing ----------------------------------------------------------------------------------------

    def run(self, args, env, stdin):
        json_out = False
        rest = []
        i = 0
        while i < len(args):
            a = args[i]
            if a in ("-j", "--json"):
                json_out = True
            elif a in GLOBAL_SWITCHES:
                pass
            elif a in GLOBAL_FLAGS_WITH_VALUE:
                i += 1
            elif any(a.startswith(f + "=") for f in GLOBAL_FLAGS_WITH_VALUE if f.startswith("--")):
                pass
            else:
                rest.append(a)
            i += 1
        if rest in (["-v"], ["--version"], ["version"]):
            return f"pxctl version {model.PX_VERSION}\n"
        if not rest:
            raise PxctlError("Usage: pxctl [command]\nUse \"pxctl [command] --help\" for more information about a command.")
        cmd, rest = rest[0], rest[1:]
        if cmd in ("volume", "v"):
            sub, rest = (rest[0], rest[1:]) if rest else ("", [])
            if sub in ("list", "l", "ls"):
                return self._list(rest, json_out, env, snapshots_only=False)
            if sub in ("inspect", "i"):
                return self._inspect(rest, json_out, env)
            if sub in ("snapshot", "snap", "s"):
                sub2, rest = (rest[0], rest[1:]) if rest else ("", [])
                if sub2 in ("create", "c"):
                    return self._snap_create(rest, env, "Volume snap successful: {id}\n")
                if sub2 in ("list", "l"):
                    return self._list(rest, json_out, env, snapshots_only=True)
                raise PxctlError(f'Error: unknown command "{sub2}" for "pxctl volume snapshot"')
            if sub == "clone":
                return self._clone(rest, env)
            if sub == "restore":
                return self._restore(rest, env)
            if sub in ("delete", "d", "rm"):
                return self._delete(rest, env, stdin, prompt=True)
            raise PxctlError(f'Error: unknown command "{sub}" for "pxctl volume"')
        if cmd in ("snap", "snapshot"):
            sub, rest = (rest[0], rest[1:]) if rest else ("", [])
            if sub in ("create", "c"):
                return self._snap_create(rest, env, "Volume successfully snapped: {id}\n")
            if sub in ("list", "l", "ls"):
                if rest and not rest[0].startswith("-"):
                    rest = ["--parent", rest[0]] + rest[1:]
                return self._list(rest, json_out, env, snapshots_only=True)
            if sub in ("delete", "d", "rm"):
                return self._delete(rest, env, stdin, prompt=False)
            raise PxctlError(f'Error: unknown command "{sub}" for "pxctl snap"')
        raise PxctlError(f'Error: unknown command "{cmd}" for "pxctl"\nRun \'pxctl --help\' for usage.')

    @staticmethod
    def _opts(args, with_value, switches=()):
        """(options, positionals) for --x VALUE / --x=VALUE / -x VALUE forms."""
        opts, pos = {}, []
        i = 0
        while i < len(args):
            a = args[i]
            key = None
            for names in with_value:
                for n in names:
                    if a == n:
                        if i + 1 >= len(args):
                            raise PxctlError(f"Error: flag needs an argument: {a}")
                        key, val = names[0], args[i + 1]
                        i += 1
                    elif n.startswith("--") and a.startswith(n + "="):
                        key, val = names[0], a[len(n) + 1:]
            if key:
                opts[key] = val
            elif any(a in names for names in switches):
                opts[next(names[0] for names in switches if a in names)] = True
            elif a.startswith("-") and a != "-":
                raise PxctlError(f"Error: unknown flag: {a}")
            else:
                pos.append(a)
            i += 1
        return opts, pos

    def _authorize(self, env, api):
        gw = self.px.gateway
        if not gw.secured or self.auth == "never":
            return
        token = env.get("PXCTL_AUTH_TOKEN")
        try:
            user, roles = gw.authenticate(f"bearer {token}" if token else "")
        except SdkError as e:
            raise PxctlError(f"rpc error: code = {model.CODE_NAMES[e.code]} desc = {e.message}") from None
        if not tokens.allowed(roles, "volume", api):
            raise PxctlError(f"rpc error: code = PermissionDenied desc = Access denied to roles: [{' '.join(roles)}]")

    def _find(self, ref):
        v = self.state.resolve(ref)
        if v is None:
            raise PxctlError(f"Volume {ref} not found")
        return v

    # -- commands ----------------------------------------------------------------------------------------

    def _list(self, args, json_out, env, snapshots_only):
        opts, pos = self._opts(args, [("--parent", "-p"), ("--label", "-l"), ("--name",), ("--volumes", "-v"), ("--node",)],
                               [("--snapshot", "-s"), ("--all", "-a"), ("--snapshot-schedule", "-S")])
        self._authorize(env, "enumerate")
        with self.state.lock:
            vols = list(self.state.volumes.values())
            if snapshots_only or opts.get("--snapshot"):
                vols = [v for v in vols if v["parent"] and v["readonly"]]
            elif not opts.get("--all"):
                vols = [v for v in vols if not v["readonly"]]
            if opts.get("--parent"):
                p = self.state.resolve(opts["--parent"])
                vols = [v for v in vols if p is not None and v["parent"] == p["id"]]
            if opts.get("--label"):
                want = _labels(opts["--label"])
                vols = [v for v in vols if all(v["labels"].get(k) == val for k, val in want.items())]
            if opts.get("--name"):
                vols = [v for v in vols if v["name"] == opts["--name"]]
            if opts.get("--volumes"):
                ids = set(opts["--volumes"].split(","))
                vols = [v for v in vols if v["id"] in ids or v["name"] in ids]
            if json_out:
                return json.dumps([self.state.pxctl_volume(v) for v in vols], indent="\t") + "\n"
            return self._table(vols, snapshots_only or bool(opts.get("--snapshot")))

    def _table(self, vols, snaps):
        head = "ID\t\t\tNAME\t\tSIZE\tHA\tSHARED\tENCRYPTED\tPROXY-VOLUME\tIO_PRIORITY\tSTATUS\t\t\t\tSNAP-ENABLED"
        lines = [head]
        for v in vols:
            s = v["spec"]
            status = f"up - attached on {v['attached_on']}" if v["state"] == "ATTACHED" else "up - detached"
            lines.append(f"{v['id']}\t{v['name']}\t{_size_text(s['size'])}\t{s['ha_level']}\t{'yes' if s['shared'] else 'no'}\t"
                         f"{'yes' if s['encrypted'] else 'no'}\tno\t\t{s['cos'] if s['cos'] != 'NONE' else 'LOW'}\t\t{status}\tno")
        return "\n".join(lines) + "\n"

    def _inspect(self, args, json_out, env):
        opts, pos = self._opts(args, [], [])
        if not pos:
            raise PxctlError("Error: Must specify volume ID or name")
        self._authorize(env, "inspect")
        with self.state.lock:
            vols = []
            for ref in pos:
                vols.append(self._find(ref))
            if json_out:
                return json.dumps([self.state.pxctl_volume(v) for v in vols], indent="\t") + "\n"
            out = []
            for v in vols:
                s = v["spec"]
                out.append("\n".join([
                    f"Volume             :  {v['id']}",
                    f"\tName            	 :  {v['name']}",
                    f"\tSize            	 :  {_size_text(s['size'])}",
                    f"\tFormat          	 :  {s['format'][len('FS_TYPE_'):].lower()}",
                    f"\tHA              	 :  {s['ha_level']}",
                    f"\tCreation time   	 :  {time.strftime('%b %d %H:%M:%S UTC %Y', time.gmtime(v['ctime']))}",
                    f"\tParent          	 :  {v['parent']}" if v["parent"] else "",
                    f"\tLabels          	 :  {','.join(f'{k}={val}' for k, val in sorted(v['labels'].items()))}",
                    f"\tState           	 :  {'Attached: ' + v['attached_on'] if v['state'] == 'ATTACHED' else 'detached'}",
                ]).replace("\n\n", "\n"))
            return "\n".join(out) + "\n"

    def _snap_create(self, args, env, template):
        opts, pos = self._opts(args, [("--name",), ("--label", "-l")], [("--readonly",)])
        if len(pos) != 1:
            raise PxctlError("Error: Must specify exactly one volume to snapshot")
        self._authorize(env, "snapshotcreate")
        with self.state.lock:
            v = self._find(pos[0])
            name = opts.get("--name") or f"{v['name']}.snap-{int(time.time())}"
            try:
                s = self.state.snapshot_create(v["id"], name, _labels(opts.get("--label")))
            except SdkError as e:
                raise PxctlError(f"Failed to create snapshot: {e.message.removeprefix('Failed to create snapshot: ')}") from None
            return template.format(id=s["id"])

    def _clone(self, args, env):
        opts, pos = self._opts(args, [("--name",), ("--label", "-l")], [])
        if len(pos) != 1:
            raise PxctlError("Error: Must specify exactly one volume to clone")
        self._authorize(env, "clone")
        with self.state.lock:
            v = self._find(pos[0])
            name = opts.get("--name") or f"{v['name']}-clone-{int(time.time())}"
            try:
                c = self.state.clone(name, v["id"], _labels(opts.get("--label")))
            except SdkError as e:
                raise PxctlError(f"Volume clone failed: {e.message}") from None
            return f"Volume clone successful: {c['id']}\n"

    def _restore(self, args, env):
        opts, pos = self._opts(args, [("--snapshot", "-s")], [])
        if len(pos) != 1 or not opts.get("--snapshot"):
            raise PxctlError("Error: Must specify the volume and --snapshot")
        self._authorize(env, "snapshotrestore")
        with self.state.lock:
            v = self._find(pos[0])
            s = self._find(opts["--snapshot"])
            try:
                self.state.restore(v["id"], s["id"])
            except SdkError as e:
                raise PxctlError(f"Restore failed: {e.message}") from None
            return f"Successfully started restoring volume {pos[0]} from {opts['--snapshot']}.\n"

    def _delete(self, args, env, stdin, prompt):
        opts, pos = self._opts(args, [], [])
        if len(pos) != 1:
            raise PxctlError("Error: Must specify exactly one volume")
        self._authorize(env, "delete")
        ref = pos[0]
        out = ""
        if prompt:
            out = f"Delete volume '{ref}', proceed ? (Y/N): "
            answer = bytes(stdin).decode("utf-8", "replace").strip().lower()
            if answer not in ("y", "yes"):
                err = PxctlError("Aborted")
                err.stdout = out
                raise err
        with self.state.lock:
            v = self.state.resolve(ref)
            if v is None:
                err = PxctlError(f"Volume {ref} not found" if prompt else f"Cannot find snapshot {ref}")
                err.stdout = out
                raise err
            try:
                self.state.delete(v["id"])
            except SdkError as e:
                err = PxctlError(e.message)
                err.stdout = out
                raise err from None
        return out + (f"Volume {ref} successfully deleted.\n" if prompt else f"Snapshot {ref} successfully deleted.\n")
