"""base.py: the interface every service of Ferry's AWS test double implements.

Standard library only. server.py owns HTTP, SigV4 verification, model validation,
fault injection and the call log; a service module only turns an operation's
parameters into a result. The contract, exactly:

    class AwsError(Exception):
        def __init__(self, code: str, message: str, status: int = 400, sender: bool = True): ...
            # code: the AWS error code, e.g. "RepositoryNotFoundException"
            # status: HTTP status (4xx client fault, 5xx server fault)
            # sender: True for a client fault ("Sender"), False for a server fault ("Receiver")

    class CallContext:  # what a handler gets besides params
        account_id: str      # "123456789012" (the fixed test account)
        region: str          # from the request's credential scope, e.g. "eu-west-1"
        access_key_id: str   # the key that signed the request ("" when unsigned)
        now: float           # epoch seconds on the double's clock (skewable by tests)
        request_id: str      # the x-amzn-RequestId this call will be answered with
        state_dir: str | None  # the STATE_DIR the double was started with, if any

    class Service:
        signing_name: str    # "ecr", "codepipeline", "sts", "ssm", "s3"
        protocol: str        # "json" (JSON 1.1) or "query"
        target_prefix: str   # JSON 1.1 X-Amz-Target prefix, e.g. "AmazonEC2ContainerRegistry_V20150921"
        core                 # the server's Core (keys, settings), set when server.py loads it
        def call(self, op: str, params: dict, ctx: CallContext) -> dict: ...
            # raise AwsError; timestamps as float epoch seconds. The default runs
            # self._op_<op>(params, ctx) under the service's own lock (for callers
            # other than the core, such as test_services.py), and raises
            # not_implemented(op) when there is no such method.
        def reset(self) -> None: ...
            # sets every piece of state; __init__ calls it

What the core guarantees before `call` runs:
  - the request is signed by a valid, unexpired key for this service's signing name
    (or the operation is unsigned in the model, like STS AssumeRoleWithWebIdentity);
  - `op` is an operation of the service's botocore model, and `params` has already
    been checked against that model (required members present, no unknown members,
    types, string lengths/patterns, number ranges, enums); `params` holds exactly
    what the client sent (JSON 1.1: the decoded body; Query: the form parameters
    rebuilt into nested dicts/lists, with integers and booleans converted);
  - calls and control hooks are serialized by one lock: a service needs no locking.

What the core does with the result:
  - JSON 1.1: the dict is the response body, sent as is (timestamps are float epoch
    seconds; they go out as JSON numbers). It is checked against the model's output
    shape: an unknown member or a wrongly typed one is a bug in the double and is
    answered with HTTP 500 InternalFailure naming the member, so it shows up in tests.
  - Query: the dict is serialized as the model's output shape in XML (or JSON when
    the client sends Accept: application/json); timestamps become ISO 8601.
  - AwsError becomes the protocol's error shape with its code, message and status.
  - Any other exception is logged to stderr and answered with 500 InternalFailure.
  - An operation the service does not implement should raise
    `not_implemented(op)` (UnknownOperationException, 400), as the default call does.

Optional hooks (looked up with getattr; leave them out if not needed):
  model_name: str            # folder under shared/ref/aws/models; default: signing_name
  def control(self, method: str, path: str, body: dict | None, ctx: CallContext) -> dict:
      # serves the unsigned control endpoint /_ferry/<signing_name>[/<more>] for seeding
      # and inspection by tests; `path` is the part after /_ferry/<signing_name>
      # ("" or "/more"); body is the decoded JSON body (None for GET). Raise
      # AwsError(code, message, status) to answer {"error": code, "message": message}.

How server.py finds a service: it imports <name>.py from this folder for name in
sts, ssm, s3, ecr, codepipeline and takes the module's `SERVICE` object.
"""

import threading


class AwsError(Exception):
    """An AWS error answer: code, message, HTTP status, and who is at fault."""

    def __init__(self, code: str, message: str, status: int = 400, sender: bool = True):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender


class CallContext:
    """What a handler gets besides params (see the module docstring)."""

    def __init__(self, account_id, region, access_key_id, now, request_id, state_dir=None):
        self.account_id = account_id
        self.region = region
        self.access_key_id = access_key_id
        self.now = now
        self.request_id = request_id
        self.state_dir = state_dir


class Service:
    """Base class of a service; subclasses set the three attributes, keep their state
    in what reset() sets, and implement call or its _op_<Operation> methods."""

    signing_name = ""
    protocol = "json"
    target_prefix = ""
    core = None

    def __init__(self):
        self._lock = threading.RLock()
        self.reset()

    def call(self, op: str, params: dict, ctx: CallContext) -> dict:
        handler = getattr(self, "_op_" + op, None)
        if handler is None:
            raise not_implemented(op)
        with self._lock:
            return handler(params, ctx)

    def reset(self) -> None:
        pass


def not_implemented(op):
    """The error for a modeled operation this double does not serve."""
    return AwsError("UnknownOperationException", f"operation {op} is not implemented by Ferry's test double")
