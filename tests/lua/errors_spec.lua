-- errors_spec.lua: Ferry's error objects: errors.new, errors.is and the
-- "message [code, HTTP status]" text people read in reports.
local errors = require("errors")

describe("errors", function()
  it("new returns the table it was given, as an error object", function()
    local t = {code = "not_found", message = "volume pvc-1 not found", op = "get"}
    local err = errors.new(t)
    assert.are.equal(t, err)
    assert.are.equal("not_found", err.code)
    assert.are.equal("volume pvc-1 not found", err.message)
    assert.are.equal("get", err.op)
  end)

  it("is recognises error objects, optionally by code", function()
    local err = errors.new{code = "conflict", message = "already exists"}
    assert.is_true(errors.is(err))
    assert.is_true(errors.is(err, "conflict"))
    assert.is_false(errors.is(err, "not_found"))
    assert.is_false(errors.is({code = "conflict", message = "a plain table"}))
    assert.is_false(errors.is({code = "conflict", message = "a plain table"}, "conflict"))
    assert.is_false(errors.is("conflict"))
    assert.is_false(errors.is(nil))
  end)

  it("survives error() and pcall with its fields", function()
    local ok, err = pcall(error, errors.new{code = "timeout", message = "too slow", retryable = true})
    assert.is_false(ok)
    assert.is_true(errors.is(err, "timeout"))
    assert.is_true(err.retryable)
  end)

  it("prints as \"message [code]\"", function()
    assert.are.equal("volume missing [not_found]", tostring(errors.new{code = "not_found", message = "volume missing"}))
  end)

  it("prints the HTTP status as \"message [code, HTTP status]\"", function()
    local err = errors.new{code = "unavailable", message = "GET /apis failed", status = 503}
    assert.are.equal("GET /apis failed [unavailable, HTTP 503]", tostring(err))
  end)

  it("rejects a table without a string code or message", function()
    assert.has_error(function() errors.new{message = "no code"} end)
    assert.has_error(function() errors.new{code = "no_message"} end)
    assert.has_error(function() errors.new{code = 42, message = "numeric code"} end)
    assert.has_error(function() errors.new("not a table") end)
  end)
end)
