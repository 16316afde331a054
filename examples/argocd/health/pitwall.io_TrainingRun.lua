-- Argo CD health of a pitwall.io TrainingRun (resource.customizations.health.pitwall.io_TrainingRun).
-- Reads only what the operator writes: status.observedGeneration and the condition that is True.
-- Self-contained on purpose: Argo CD runs each health script alone (no require), so the helpers
-- below also appear in pitwall.io_RetrainPolicy.lua.
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
  hs.message = "Waiting for the PitWall operator to pick up the run"
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

-- First match wins: terminal states before Suspended before Running.
local rules = {
  { type = "Failed", health = "Degraded" },
  { type = "Succeeded", health = "Healthy" },
  { type = "Suspended", health = "Suspended" },
  { type = "Running", health = "Progressing" },
}
local conditions = obj.status.conditions
for _, rule in ipairs(rules) do
  local c = find(conditions, rule.type)
  if c ~= nil and c.status == "True" then
    hs.status = rule.health
    hs.message = describe(c, rule.type)
    local promoted = find(conditions, "Promoted")
    if rule.type == "Succeeded" and promoted ~= nil and promoted.status == "True" then
      hs.message = hs.message .. "; promoted"
    end
    local progress = obj.status.progress
    if rule.type == "Running" and progress ~= nil and progress.percent ~= nil then
      hs.message = hs.message .. " (" .. tostring(progress.percent) .. "%)"
    end
    return hs
  end
end

hs.status = "Progressing"
hs.message = "Pending"
return hs
