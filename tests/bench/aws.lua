-- aws.lua: the AWS half of `make bench`, run as `ferry lua tests/bench/aws.lua
-- SIGNS CALLS` with the AWS double's environment: SigV4 signatures per
-- second (the same request botocore signs in aws_botocore.py), then the mean
-- time of one aws.call round trip (STS GetCallerIdentity) against the double.
-- Prints one JSON line {"signs_per_s": n, "call_ms": ms}.
local aws = require("aws")
local json = require("json")
local task = require("task")

local signs = math.tointeger(tonumber(arg[1])) or 20000
local calls = math.tointeger(tonumber(arg[2])) or 50

local request = {
  method = "POST",
  url = "https://sts.eu-west-1.amazonaws.com/",
  headers = {["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"},
  body = "Action=GetCallerIdentity&Version=2011-06-15",
}
local opts = {
  service = "sts",
  region = "eu-west-1",
  credentials = {access_key_id = "AKIDEXAMPLE", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
  time = 1440938160,
}

local t0 = task.now()
for _ = 1, signs do aws.sign(request, opts) end
local sign_s = task.now() - t0

aws.call{service = "sts", operation = "GetCallerIdentity"} -- warm: credentials, connection
t0 = task.now()
for _ = 1, calls do aws.call{service = "sts", operation = "GetCallerIdentity"} end
local call_s = task.now() - t0

print(json.encode{signs_per_s = signs / sign_s, call_ms = call_s / calls * 1000})
