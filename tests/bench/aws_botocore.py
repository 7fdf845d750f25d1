#!/usr/bin/python3
"""aws_botocore.py: the baseline for tests/bench/aws.lua, with Debian's botocore
and boto3: the same SigV4 signature N times (botocore.auth.SigV4Auth), then M
STS GetCallerIdentity round trips against the AWS double named by
AWS_ENDPOINT_URL. Prints one JSON line {"signs_per_s": n, "call_ms": ms}.
Usage: aws_botocore.py SIGNS CALLS
"""

import datetime
import json
import os
import sys
import time
from unittest import mock

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main():
    signs, calls = int(sys.argv[1]), int(sys.argv[2])
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    fixed = datetime.datetime(2015, 8, 30, 12, 36, 0)
    with mock.patch("botocore.auth.datetime") as dt:  # the same fixed clock as aws.lua
        dt.datetime.utcnow.return_value = fixed
        t0 = time.perf_counter()
        for _ in range(signs):
            req = AWSRequest(method="POST", url="https://sts.eu-west-1.amazonaws.com/",
                             headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                             data=b"Action=GetCallerIdentity&Version=2011-06-15")
            SigV4Auth(creds, "sts", "eu-west-1").add_auth(req)
        sign_s = time.perf_counter() - t0

    sts = boto3.client("sts", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
    sts.get_caller_identity()  # warm: credentials, connection
    t0 = time.perf_counter()
    for _ in range(calls):
        sts.get_caller_identity()
    call_s = time.perf_counter() - t0
    print(json.dumps({"signs_per_s": signs / sign_s, "call_ms": call_s / calls * 1000}))


if __name__ == "__main__":
    main()
