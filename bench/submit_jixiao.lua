-- Copied unchanged (apart from this line) from the project's shared side-by-side bench kit (bench/README.md, "Link submissions").
-- wrk script: one connection per thread (-t N -c N). Each thread walks its own slice of
-- tokens: GET /s/<token>, pull the hidden csrf field (+cookies), POST the answer, check "Thank you!".
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } wrk_ts; int clock_gettime(int, wrk_ts *); ]]
local tsbuf = ffi.new("wrk_ts")
local function now_ms() ffi.C.clock_gettime(1, tsbuf); return tonumber(tsbuf.tv_sec) * 1000 + tonumber(tsbuf.tv_nsec) / 1e6 end

local threads = {}
local counter = 0
function setup(thread)
  thread:set("tid", counter); counter = counter + 1
  table.insert(threads, thread)
end

local tokens, idx, phase, csrf, cookie, t_start = {}, 1, "get", nil, nil, 0
local sid = nil  -- JIXIAO: the form's submission_id hidden field
local labels = {"%E9%9D%9E%E5%B8%B8%E6%BB%A1%E6%84%8F","%E6%AF%94%E8%BE%83%E6%BB%A1%E6%84%8F","%E4%B8%80%E8%88%AC","%E4%B8%8D%E5%A4%AA%E6%BB%A1%E6%84%8F","%E9%9D%9E%E5%B8%B8%E4%B8%8D%E6%BB%A1%E6%84%8F"}  -- JIXIAO: scale labels (q1 1..5 -> label)
lat = {}; completed = 0; failed = 0
local comments = {"", "", "Great%20service%2C%20thanks.", "Our%20contact%20person%20was%20very%20helpful%20and%20the%20onboarding%20went%20smoothly."}

function init(args)
  local file, nthreads = args[1], tonumber(args[2])
  local per = math.floor(tonumber(args[3]) / nthreads)
  local first = tid * per
  local i = 0
  for line in io.lines(file) do
    if i >= first + per then break end
    if i >= first then tokens[#tokens + 1] = line end
    i = i + 1
  end
  math.randomseed(1234 + tid)
end

function request()
  local tok = tokens[idx]
  if phase == "get" then
    t_start = now_ms()
    return wrk.format("GET", "/l/" .. tok)  -- JIXIAO: /l/ path
  else
    -- JIXIAO: csrf + submission_id + five questions (4 scale, 1 free text) instead of q1 + comment
    local body = "csrf=" .. csrf .. "&submission_id=" .. sid .. "&q_guide=" .. labels[math.random(1, 5)] .. "&q_review=" .. labels[math.random(1, 5)]
      .. "&q_funds=" .. labels[math.random(1, 5)] .. "&q_overall=" .. labels[math.random(1, 5)] .. "&q_suggestion=" .. comments[math.random(1, #comments)]
    local h = {["Content-Type"] = "application/x-www-form-urlencoded"}
    if cookie then h["Cookie"] = cookie end
    return wrk.format("POST", "/l/" .. tok .. "/answers", h, body)  -- JIXIAO: form action
  end
end

function response(status, headers, body)
  if phase == "get" then
    csrf = body and body:match('name="csrf" value="([^"]*)"')
    sid = body and body:match('name="submission_id" value="([^"]*)"')  -- JIXIAO
    local sc = headers["Set-Cookie"]
    cookie = sc and sc:match("^([^;]*)") or nil
    if status == 200 and csrf and sid then phase = "post" else failed = failed + 1; idx = idx + 1 end
  else
    if status == 303 and (headers["Location"] or ""):find("done=answers", 1, true) then  -- JIXIAO: PRG 303 = committed
      completed = completed + 1; lat[#lat + 1] = now_ms() - t_start
    else failed = failed + 1 end
    phase = "get"; idx = idx + 1
  end
  if idx > #tokens then idx = 1 end  -- wraps only if the slice is exhausted (would show up as failures)
end

function done(summary, latency, requests)
  local all, comp, fail = {}, 0, 0
  for _, t in ipairs(threads) do
    comp = comp + t:get("completed"); fail = fail + t:get("failed")
    local l = t:get("lat")
    for _, v in ipairs(l) do all[#all + 1] = v end
  end
  table.sort(all)
  local function q(p) if #all == 0 then return 0 end return all[math.max(1, math.min(#all, math.floor(p * (#all - 1) + 1.5)))] end
  local secs = summary.duration / 1e6
  io.write(string.format('WRKJSON {"completed": %d, "failed": %d, "duration_s": %.2f, "rate_per_s": %.1f, "p50_ms": %.2f, "p99_ms": %.2f, "requests": %d, "socket_errors": %d}\n',
    comp, fail, secs, comp / secs, q(0.5), q(0.99), summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
