-- Argo CD health of a pitwall.io RetrainPolicy (resource.customizations.health.pitwall.io_RetrainPolicy).
-- A policy is a standing object like a CronJob: Healthy while the operator evaluates it, Degraded
-- when it is invalid or its data refresh fails, Suspended when spec.suspend holds.
-- Self-contained on purpose: Argo CD runs each health script alone (no require), so the helpers
-- below also appear in pitwall.io_TrainingRun.lua.
local hs = {}

local function find(conditions, wanted)
  for _, c in ipairs(conditions or {}) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  local text = fallback
  if c.reason ~= nil and c.reason ~= "" then
    text = c.reason
  end
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the PitWall operator to pick up the policy"
  return hs
end

-- A status written for an older spec says nothing about the current one.
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation) ..
    " (status is for " .. tostring(observed or "none") .. ")"
  return hs
end

-- First match wins: failures before Suspended before Ready.
local rules = {
  { type = "Failed", status = "True", health = "Degraded" },
  { type = "DataRefreshFailed", status = "True", health = "Degraded" },
  { type = "Suspended", status = "True", health = "Suspended" },
  { type = "Ready", status = "True", health = "Healthy" },
  { type = "Ready", status = "False", health = "Degraded" },
}
for _, rule in ipairs(rules) do
  local c = find(obj.status.conditions, rule.type)
  if c ~= nil and c.status == rule.status then
    hs.status = rule.health
    hs.message = describe(c, rule.type)
    if rule.health == "Healthy" and obj.status.lastTriggerTime ~= nil then
      hs.message = hs.message .. "; last run created " .. obj.status.lastTriggerTime
    end
    return hs
  end
end

hs.status = "Progressing"
hs.message = "Waiting for the first evaluation"
return hs
