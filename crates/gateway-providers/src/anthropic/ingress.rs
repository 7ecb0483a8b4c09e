//! The gateway's Anthropic-format ingress: pure conversions between the
//! Anthropic Messages API and the OpenAI shapes the router speaks.
