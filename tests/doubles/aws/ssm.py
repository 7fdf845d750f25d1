"""ssm.py: AWS Systems Manager Parameter Store (JSON 1.1) for the AWS test double.

Operations: GetParameter and GetParameters. A name may be given as the name, as
`name:VERSION`, or as the parameter's ARN. SecureString values come back in clear
only WithDecryption=true; otherwise as an opaque base64 "ciphertext". A missing
parameter is ParameterNotFound (400), a missing version ParameterVersionNotFound.

Control (/_ferry/ssm): POST {"parameters": [{"name", "value", "type"?}]} or one such
object (type String (default), StringList or SecureString); putting a name again
makes a new version. GET lists the names and versions.
"""

import base64

from base import AwsError, Service, not_implemented

TYPES = ("String", "StringList", "SecureString")


def _ciphertext(value):
    return base64.b64encode(b"\x01\x02\x03\x00ferry-kms:" + value.encode()[::-1]).decode()


class SsmService(Service):
    signing_name = "ssm"
    protocol = "json"
    target_prefix = "AmazonSSM"

    def reset(self):
        self.params = {}  # name -> [version dicts, oldest first]

    def _find(self, ref):
        name, version = ref, None
        if ref.startswith("arn:") and ":parameter/" in ref:
            name = ref.split(":parameter", 1)[1]  # "/a/b" for "/a/b" or for "a/b"
        head, sep, tail = name.rpartition(":")
        if sep and tail.isdigit():
            name, version = head, int(tail)
        candidates = [name, name[1:]] if ref.startswith("arn:") else [name]
        versions = next((self.params[c] for c in candidates if c in self.params), None)
        if not versions:
            raise AwsError("ParameterNotFound", f"Parameter {ref} not found.")
        if version is None:
            return versions[-1], None
        for v in versions:
            if v["Version"] == version:
                return v, f":{version}"
        raise AwsError("ParameterVersionNotFound", f"Systems Manager could not find version {version} of {name}. Verify the version and try again.")

    def _answer(self, stored, selector, decrypt, ctx):
        value = stored["Value"]
        if stored["Type"] == "SecureString" and not decrypt:
            value = _ciphertext(value)
        name = stored["Name"]
        out = {
            "Name": name,
            "Type": stored["Type"],
            "Value": value,
            "Version": stored["Version"],
            "LastModifiedDate": stored["LastModifiedDate"],
            "ARN": f"arn:aws:ssm:{ctx.region}:{ctx.account_id}:parameter{name if name.startswith('/') else '/' + name}",
            "DataType": "text",
        }
        if selector:
            out["Selector"] = selector
        return out

    def call(self, op, params, ctx):
        decrypt = bool(params.get("WithDecryption"))
        if op == "GetParameter":
            stored, selector = self._find(params["Name"])
            return {"Parameter": self._answer(stored, selector, decrypt, ctx)}
        if op == "GetParameters":
            found, invalid = [], []
            for ref in params["Names"]:
                try:
                    stored, selector = self._find(ref)
                    found.append(self._answer(stored, selector, decrypt, ctx))
                except AwsError:
                    invalid.append(ref)
            return {"Parameters": found, "InvalidParameters": invalid}
        raise not_implemented(op)

    def control(self, method, path, body, ctx):
        if method == "POST":
            items = body.get("parameters", [body]) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise AwsError("BadRequest", 'expected {"parameters": [{"name", "value", "type"}]}')
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("value"), str):
                    raise AwsError("BadRequest", "each parameter needs string name and value")
                kind = item.get("type", "String")
                if kind not in TYPES:
                    raise AwsError("BadRequest", f"type must be one of {', '.join(TYPES)}")
                versions = self.params.setdefault(item["name"], [])
                versions.append(
                    {
                        "Name": item["name"],
                        "Type": kind,
                        "Value": item["value"],
                        "Version": len(versions) + 1,
                        "LastModifiedDate": float(int(ctx.now)),
                    }
                )
        return {"parameters": [{"name": n, "version": v[-1]["Version"], "type": v[-1]["Type"]} for n, v in sorted(self.params.items())]}


SERVICE = SsmService()
