"""protocols.py: AWS wire shapes of the test double's answers, success and error.

Standard library only. Each function returns a Response (status, headers, body);
server.py adds Date, Content-Length and the connection headers.

  JSON 1.1 (ECR, CodePipeline, SSM), notes §2.1:
    200, Content-Type: application/x-amz-json-1.1, x-amzn-RequestId, the result object;
    errors 4xx/5xx with {"__type": code, "message": text}.
  Query (STS), notes §2.2:
    200 text/xml <OpResponse xmlns=NS><OpResult>…</OpResult><ResponseMetadata>
    <RequestId/></ResponseMetadata></OpResponse>; with Accept: application/json the
    same tree as JSON ({"OpResponse": {"OpResult": {…}, "ResponseMetadata": {…}}},
    timestamps as epoch numbers). Errors: <ErrorResponse xmlns=NS><Error><Type>Sender|
    Receiver</Type><Code/><Message/></Error><RequestId/></ErrorResponse>, or
    {"Error": {"Type", "Code", "Message"}, "RequestId"} as JSON.
  S3 (REST-XML): errors <Error><Code/><Message/>…<RequestId/><HostId/></Error>,
    application/xml; HEAD answers carry no body.
"""

import json
import time
from xml.sax.saxutils import escape

JSON_11 = "application/x-amz-json-1.1"


class Response:
    def __init__(self, status, headers=(), body=b""):
        self.status = status
        self.headers = list(headers)
        self.body = body


def iso8601(epoch):
    """AWS XML timestamp: 2017-12-24T03:14:03Z (with milliseconds when fractional)."""
    whole = int(epoch)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    ms = int(round((epoch - whole) * 1000))
    return f"{text}.{ms:03d}Z" if ms else f"{text}Z"


# -- JSON 1.1 --------------------------------------------------------------------


def json_ok(result, request_id):
    body = json.dumps(result, separators=(",", ":")).encode()
    return Response(200, [("x-amzn-RequestId", request_id), ("Content-Type", JSON_11)], body)


def json_error(code, message, status, request_id, message_key="message"):
    """`message_key` is "Message" where the model's error shape spells it so (SSM
    ThrottlingException), as the real service does (notes §2.1)."""
    body = json.dumps({"__type": code, message_key: message}).encode()
    return Response(status, [("x-amzn-RequestId", request_id), ("Content-Type", JSON_11)], body)


# -- Query -----------------------------------------------------------------------


def _xml_value(model, shape_name, value, out):
    shape = model.shapes[shape_name]
    kind = shape["type"]
    if kind == "structure":
        for name, ref in shape.get("members", {}).items():
            if value.get(name) is None:
                continue
            tag = ref.get("locationName", name)
            out.append(f"<{tag}>")
            _xml_value(model, ref["shape"], value[name], out)
            out.append(f"</{tag}>")
    elif kind == "list":
        tag = shape["member"].get("locationName", "member")
        for item in value:
            out.append(f"<{tag}>")
            _xml_value(model, shape["member"]["shape"], item, out)
            out.append(f"</{tag}>")
    elif kind == "map":
        for k, v in value.items():
            out.append("<entry><key>")
            _xml_value(model, shape["key"]["shape"], k, out)
            out.append("</key><value>")
            _xml_value(model, shape["value"]["shape"], v, out)
            out.append("</value></entry>")
    elif kind == "timestamp":
        out.append(iso8601(value))
    elif kind == "boolean":
        out.append("true" if value else "false")
    else:
        out.append(escape(str(value)))


def query_ok(model, op, result, request_id, as_json):
    wrapper = model.result_wrapper(op) or f"{op}Result"
    shape = model.output_shape(op)
    if as_json:
        tree = {f"{op}Response": {wrapper: result, "ResponseMetadata": {"RequestId": request_id}}}
        body = json.dumps(tree, separators=(",", ":")).encode()
        return Response(200, [("x-amzn-RequestId", request_id), ("Content-Type", "application/json")], body)
    ns = model.metadata.get("xmlNamespace", "")
    out = [f'<{op}Response xmlns="{ns}">\n  <{wrapper}>']
    if shape:
        _xml_value(model, shape, result, out)
    out.append(f"</{wrapper}>\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n")
    out.append(f"  </ResponseMetadata>\n</{op}Response>\n")
    return Response(200, [("x-amzn-RequestId", request_id), ("Content-Type", "text/xml")], "".join(out).encode())


def query_error(code, message, status, sender, request_id, namespace, as_json):
    kind = "Sender" if sender else "Receiver"
    if as_json:
        tree = {"Error": {"Type": kind, "Code": code, "Message": message}, "RequestId": request_id}
        body = json.dumps(tree).encode()
        ctype = "application/json"
    else:
        body = (
            f'<ErrorResponse xmlns="{namespace}">\n  <Error>\n    <Type>{kind}</Type>\n'
            f"    <Code>{escape(code)}</Code>\n    <Message>{escape(message)}</Message>\n  </Error>\n"
            f"  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n"
        ).encode()
        ctype = "text/xml"
    return Response(status, [("x-amzn-RequestId", request_id), ("Content-Type", ctype)], body)


# -- S3 --------------------------------------------------------------------------


def s3_error(code, message, status, request_id, extra=()):
    """`extra`: (element, text) pairs such as ("Key", key), placed before RequestId."""
    parts = [f"<Code>{escape(code)}</Code>", f"<Message>{escape(message)}</Message>"]
    parts += [f"<{tag}>{escape(str(text))}</{tag}>" for tag, text in extra]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
        + "".join(parts)
        + f"<RequestId>{request_id}</RequestId><HostId>ferry-test-double</HostId></Error>"
    ).encode()
    headers = [("x-amz-request-id", request_id), ("x-amz-id-2", "ferry-test-double"), ("Content-Type", "application/xml")]
    return Response(status, headers, body)


# -- plain JSON (control, container credentials, IMDS) ---------------------------


def plain_json(status, obj, headers=()):
    return Response(status, [("Content-Type", "application/json"), *headers], json.dumps(obj, indent=None).encode())


def plain_text(status, text, headers=()):
    return Response(status, [("Content-Type", "text/plain"), *headers], text.encode())
