"""s3.py: S3 GetObject/HeadObject (REST-XML) for the AWS test double.

Addressing: path style http://HOST/bucket/key and virtual-host style, where Host is
<bucket>.s3[.<region>].amazonaws.com[.cn], <bucket>.s3-<region>.amazonaws.com or
<bucket>.localhost[:port]. The key is the percent-decoded rest of the path.

GET answers 200 with the stored bytes, Content-Type, ETag ("md5"), Last-Modified,
Accept-Ranges, x-amz-request-id; a single "Range: bytes=a-b" (or a-, -n) answers
206 with Content-Range, an unsatisfiable one 416 InvalidRange. HEAD answers the
same headers without a body. Errors: NoSuchBucket / NoSuchKey (404), and
NotImplemented (501) for any other method.

Control (/_ferry/s3): POST {"bucket", "key", "body": base64, "content_type"?}
stores an object (bucket created on demand); GET lists buckets and keys.
"""

import base64
import binascii
import email.utils
import hashlib
import re
from urllib.parse import unquote

from base import AwsError, Service
import protocols

VIRTUAL_HOST = re.compile(
    r"(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\."
    r"(?:s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?|s3\.localhost|localhost)(?::[0-9]+)?"
)
RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")


class S3Error(AwsError):
    def __init__(self, code, message, status, extra=()):
        super().__init__(code, message, status)
        self.extra = list(extra)


class S3Service(Service):
    signing_name = "s3"
    protocol = "rest-xml"
    target_prefix = ""

    def reset(self):
        self.buckets = {}  # bucket -> {key -> object dict}

    @staticmethod
    def locate(host, wire_path):
        """(bucket, key) addressed by Host and path; bucket "" when none."""
        m = VIRTUAL_HOST.fullmatch((host or "").lower())
        path = unquote(wire_path)
        if m:
            return m.group("bucket"), path[1:]
        bucket, _, key = path[1:].partition("/")
        return bucket, key

    def get_object(self, method, bucket, key, headers, ctx):
        """The GET/HEAD answer as a protocols.Response; raises S3Error."""
        if method not in ("GET", "HEAD"):
            raise S3Error("NotImplemented", "A header you provided implies functionality that is not implemented", 501)
        objects = self.buckets.get(bucket)
        if objects is None:
            raise S3Error("NoSuchBucket", "The specified bucket does not exist", 404, [("BucketName", bucket)])
        obj = objects.get(key)
        if obj is None:
            raise S3Error("NoSuchKey", "The specified key does not exist.", 404, [("Key", key)])
        body, status = obj["body"], 200
        out = [
            ("Content-Type", obj["content_type"]),
            ("ETag", obj["etag"]),
            ("Last-Modified", email.utils.formatdate(obj["modified"], usegmt=True)),
            ("Accept-Ranges", "bytes"),
            ("x-amz-request-id", ctx.request_id),
            ("x-amz-id-2", "ferry-test-double"),
        ]
        wanted = headers.get("Range")
        if wanted is not None:
            span = self._range(wanted.strip(), len(body))
            if span is not None:
                first, last = span
                out.append(("Content-Range", f"bytes {first}-{last}/{len(body)}"))
                body, status = body[first : last + 1], 206
        return protocols.Response(status, out, body)  # server.py drops the body for HEAD

    @staticmethod
    def _range(text, size):
        m = RANGE.fullmatch(text)
        if m is None or (not m.group(1) and not m.group(2)):
            return None  # not a single byte range: S3 ignores it and sends everything
        if m.group(1):
            first = int(m.group(1))
            last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        else:
            first, last = max(size - int(m.group(2)), 0), size - 1
        if first >= size or first > last:
            raise S3Error("InvalidRange", "The requested range is not satisfiable", 416, [("RangeRequested", text), ("ActualObjectSize", size)])
        return first, last

    def control(self, method, path, body, ctx):
        if method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("bucket"), str) or not isinstance(body.get("key"), str):
                raise AwsError("BadRequest", 'expected {"bucket", "key", "body": base64, "content_type"?}')
            try:
                data = base64.b64decode(body.get("body", ""), validate=True)
            except (binascii.Error, TypeError):
                raise AwsError("BadRequest", "body must be base64") from None
            self.buckets.setdefault(body["bucket"], {})[body["key"]] = {
                "body": data,
                "content_type": body.get("content_type", "binary/octet-stream"),
                "etag": '"' + hashlib.md5(data).hexdigest() + '"',
                "modified": int(ctx.now),
            }
        return {b: sorted(objs) for b, objs in sorted(self.buckets.items())}


SERVICE = S3Service()
