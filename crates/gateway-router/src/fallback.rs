//! Which groups a failed group falls back to.

use crate::engine::Engine;
use crate::policy::FallbackKind;
use crate::types::FallbackMap;
use gateway_types::ModelName;

/// The key that applies a fallback entry to every group.
pub const ANY_GROUP: &str = "*";

fn lookup<'a>(map: &'a FallbackMap, group: &str) -> Option<&'a [ModelName]> {
    map.get(group)
        .or_else(|| map.get(ANY_GROUP))
        .map(Vec::as_slice)
        .filter(|groups| !groups.is_empty())
}

impl Engine {
    /// The configured fallback groups of `group` for a failure of `kind`:
    /// the kind's own map (context window, content policy) first, then
    /// `fallbacks`, then `default_fallbacks`. An entry for the group wins
    /// over the `"*"` entry.
    pub(crate) fn fallbacks(&self, group: &str, kind: FallbackKind) -> &[ModelName] {
        let settings = self.settings();
        let general = || {
            lookup(&settings.fallbacks, group).or_else(|| {
                Some(settings.default_fallbacks.as_slice()).filter(|groups| !groups.is_empty())
            })
        };
        let found = match kind {
            FallbackKind::ContextWindow => {
                lookup(&settings.context_window_fallbacks, group).or_else(general)
            }
            FallbackKind::ContentPolicy => {
                lookup(&settings.content_policy_fallbacks, group).or_else(general)
            }
            FallbackKind::General => general(),
        };
        found.unwrap_or(&[])
    }
}
