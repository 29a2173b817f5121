-- pgo-mix.lua: wrk script for `pgo.sh --train mixed`, requests shaped
-- unlike the benchmarks' one (GET / with a bearer token and an Origin):
-- browser and CLI requests with many fields, several paths and methods,
-- bodies, the other credential header, and, for PGO_KIND=deny, refusals
-- of several kinds. Cycled in order, one request each, on every
-- connection.
--
-- Environment: PGO_TOKEN (the member's token), PGO_ORIGIN (an allowed
-- origin), PGO_KIND (allow | deny).

local token = os.getenv("PGO_TOKEN")
local ok = os.getenv("PGO_ORIGIN")
local kind = os.getenv("PGO_KIND") or "allow"
local reqs = {}
local n = 0

local function browser(extra)
  local h = {
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
    ["Accept"] = "application/json, text/plain, */*",
    ["Accept-Language"] = "en-GB,en;q=0.9,de;q=0.7",
    ["Accept-Encoding"] = "gzip, deflate, br, zstd",
    ["Sec-Fetch-Site"] = "same-origin",
    ["Sec-Fetch-Mode"] = "cors",
    ["Sec-Fetch-Dest"] = "empty",
    ["Referer"] = ok .. "/chat?session=main",
    ["Cookie"] = "theme=dark; sidebar=collapsed; _ga=GA1.1.1234567890.1700000000",
    ["Origin"] = ok,
  }
  for k, v in pairs(extra) do h[k] = v end
  return h
end

local function add(method, path, headers, body)
  reqs[#reqs + 1] = wrk.format(method, path, headers, body)
end

local chat = '{"session":"main","message":{"role":"user","content":"'
  .. string.rep("summarise the open pull requests and their reviewers; ", 6) .. '"},"stream":false}'

-- Built in init(), after wrk has set the Host field from the URL.
function init(_)
  if kind == "allow" then
    add("GET", "/api/sessions?limit=20&order=recent", browser({ ["Authorization"] = "Bearer " .. token }))
    add("GET", "/assets/app.js", browser({ ["X-Clawgate-Token"] = token, ["Accept"] = "*/*",
      ["Sec-Fetch-Dest"] = "script", ["If-None-Match"] = '"66a1-stale"' }))
    add("POST", "/api/chat", browser({ ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json" }), chat)
    add("GET", "/", { ["Authorization"] = "Bearer " .. token, ["User-Agent"] = "openclaw-cli/2026.9.6",
      ["Accept"] = "*/*" })
    add("HEAD", "/api/health", { ["Authorization"] = "Bearer " .. token })
    add("GET", "/api/missing/thing", browser({ ["Authorization"] = "Bearer " .. token,
      ["Origin"] = "http://127.0.0.1:3000" }))
    add("DELETE", "/api/sessions/old-7", browser({ ["Authorization"] = "Bearer " .. token }))
  else
    add("GET", "/api/sessions", browser({ ["Authorization"] = "Bearer wrong-" .. token }))
    add("GET", "/api/sessions", browser({}))
    add("GET", "/api/sessions", browser({ ["Authorization"] = "Bearer " .. token,
      ["Origin"] = "http://" .. ok:gsub("^https://", "") }))
    add("GET", "/assets/app.js", browser({ ["X-Clawgate-Token"] = token,
      ["Origin"] = "https://evil.example.net" }))
    add("POST", "/api/chat", browser({ ["Authorization"] = "Bearer " .. token,
      ["Origin"] = ok .. ":8443", ["Content-Type"] = "application/json" }), chat)
    add("GET", "/", { ["Authorization"] = "Basic dXNlcjpwYXNz", ["User-Agent"] = "curl/8.5.0" })
  end
end

function request()
  n = n % #reqs + 1
  return reqs[n]
end
