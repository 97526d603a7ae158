//! Faults around the agent.

mod support;
