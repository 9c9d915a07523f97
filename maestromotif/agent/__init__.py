"""The agent: play tasks with the trained skills (episode sessions, per-caller limits) and the
client of the Agent API (``maestromotif.agent.client``) with its terminal view."""
