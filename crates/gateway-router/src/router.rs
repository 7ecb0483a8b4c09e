//! The async driver: resolves groups, asks the engine what to do, calls
//! providers under deadlines, retries, waits and falls back.

use crate::attempt::{commit, now, CallGuard, InFlight, ItemStream, Peeked, Reported, Shared};
use crate::engine::{Engine, GroupId, Pick, PickRequest, Step};
use crate::policy::{self, Retry};
use crate::state::{with_table, FastRng, MemoryState, Rng, RouterState, StatsTable};
use crate::tokens;
use crate::types::{
    AttemptError, Deployment, RequestOptions, RouteFailure, RouteReport, Routed, RouterError,
    RouterSettings,
};
use futures_util::StreamExt;
use gateway_providers::{
    CallContext, ChatReply, ChunkReply, ChunkStream, ErrorKind, Provider, ProviderError,
    ReplyStream,
};
use gateway_types::{
    ChatChunk, ChatRequest, ChatResponse, EmbeddingsRequest, EmbeddingsResponse, Message,
    ModelName, Role,
};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Routes calls to the deployments of model groups.
///
/// Built once from validated settings and deployments; cheap to share behind
/// an `Arc`. Calls take `&self`; no lock is held across an `.await` and no
/// task is spawned, so dropping a call's future cancels it.
#[derive(Debug)]
pub struct Router {
    shared: Arc<Shared>,
    rng: Mutex<Box<dyn Rng>>,
}

/// Builds a [`Router`] with a chosen state store or random source.
#[derive(Debug)]
pub struct RouterBuilder {
    settings: RouterSettings,
    deployments: Vec<Deployment>,
    state: Option<Arc<dyn RouterState>>,
    rng: Option<Box<dyn Rng>>,
}

impl RouterBuilder {
    /// Keeps statistics in `state` (shared with an earlier router, or a
    /// shared backend) instead of a new [`MemoryState`].
    pub fn state(mut self, state: Arc<dyn RouterState>) -> Self {
        self.state = Some(state);
        self
    }

    /// Draws random numbers (picks, jitter) from `rng`.
    pub fn rng(mut self, rng: impl Rng + 'static) -> Self {
        self.rng = Some(Box::new(rng));
        self
    }

    /// Builds the router; see [`Engine::new`] for what is rejected.
    pub fn build(self) -> Result<Router, RouterError> {
        let state = self.state.unwrap_or_else(|| Arc::new(MemoryState::new()));
        if self.settings.enable_pre_call_checks {
            // Load the vocabulary now rather than on the first request.
            tokens::count_text(self.settings.tokenizer, "");
        }
        let (settings, deployments) = (self.settings, self.deployments);
        let engine = with_table(&*state, |table: &mut StatsTable| {
            Engine::new(settings, deployments, table)
        })
        .unwrap_or_else(|| {
            Err(RouterError::InvalidConfig(
                "the router state did not answer".to_owned(),
            ))
        })?;
        Ok(Router {
            shared: Arc::new(Shared { engine, state }),
            rng: Mutex::new(self.rng.unwrap_or_else(|| Box::new(FastRng::default()))),
        })
    }
}

/// Which deadline cut an attempt short.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    Overall(Duration),
    Deployment(Duration),
    FirstChunk(Duration),
}

/// How a group's attempts ended without an answer.
enum GroupEnd {
    /// The request's own timeout passed: stop everything.
    Stop(RouterError),
    /// The group failed; fallbacks may follow. `tier` is the highest tier
    /// that was called, if any was.
    Failed {
        error: RouterError,
        tier: Option<usize>,
    },
}

/// Per-request facts shared by every group the request visits.
struct Run<'a> {
    options: &'a RequestOptions,
    input_tokens: Option<u64>,
    stream: bool,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
}

impl Router {
    /// Builds a router with in-memory state. Deployments that share a
    /// `model_name` form a group; groups are listed in the order their first
    /// deployment appears. Fails on an invalid configuration (see
    /// [`Engine::new`]).
    pub fn new(
        settings: RouterSettings,
        deployments: Vec<Deployment>,
    ) -> Result<Self, RouterError> {
        Self::builder(settings, deployments).build()
    }

    /// A builder, to choose the state store or random source.
    pub fn builder(settings: RouterSettings, deployments: Vec<Deployment>) -> RouterBuilder {
        RouterBuilder {
            settings,
            deployments,
            state: None,
            rng: None,
        }
    }

    /// A new router (after a configuration reload) that keeps the cooldowns,
    /// limits and latencies `previous` recorded for deployments with the same
    /// ids.
    pub fn new_with_state(
        settings: RouterSettings,
        deployments: Vec<Deployment>,
        previous: &Router,
    ) -> Result<Self, RouterError> {
        Self::builder(settings, deployments)
            .state(previous.state())
            .build()
    }

    /// The statistics store, to share with a rebuilt router.
    pub fn state(&self) -> Arc<dyn RouterState> {
        Arc::clone(&self.shared.state)
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// The router's settings.
    pub fn settings(&self) -> &RouterSettings {
        self.shared.engine.settings()
    }

    /// The model groups, in configuration order.
    pub fn model_names(&self) -> &[ModelName] {
        self.shared.engine.names()
    }

    /// True when `name` is a model group.
    pub fn has_model(&self, name: &str) -> bool {
        self.shared.engine.group(name).is_some()
    }

    /// The deployments of a group, in configuration order.
    pub fn deployments(&self, name: &str) -> Option<&[Arc<Deployment>]> {
        let engine = &self.shared.engine;
        engine
            .group(name)
            .map(|group| engine.group_deployments(group))
    }

    /// A non-stream chat completion.
    pub async fn chat(
        &self,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Result<Routed<ChatResponse>, RouteFailure> {
        self.chat_as::<ChatResponse>(request, options).await
    }

    /// [`Router::chat`] through [`Provider::chat_reply`]: an OpenAI-format
    /// upstream's answer stays the body it sent (checked, not re-encoded),
    /// for a caller that passes it on as JSON.
    ///
    /// [`Provider::chat_reply`]: gateway_providers::Provider::chat_reply
    pub async fn chat_reply(
        &self,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Result<Routed<ChatReply>, RouteFailure> {
        self.chat_as::<ChatReply>(request, options).await
    }

    async fn chat_as<T: ChatAnswer>(
        &self,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Result<Routed<T>, RouteFailure> {
        let count = || tokens::count_chat(self.settings().tokenizer, request);
        self.run(
            &request.model,
            options,
            false,
            count,
            |deployment| async move {
                let request =
                    with_system_prompt(request, deployment.settings.system_prompt.as_deref());
                T::call(&*deployment.provider, &request, &options.call).await
            },
            |answer: T, guard| {
                guard.succeed(answer.usage().map_or(0, |usage| usage.total_tokens));
                answer
            },
        )
        .await
    }

    /// A streamed chat completion. Resolves once a deployment sent its first
    /// chunk within the stream timeout: a failure before that (at open, as
    /// the first item, or by timeout) retries and falls back like any other;
    /// after it the stream is committed and a failure is its terminal `Err`
    /// item.
    pub async fn chat_stream(
        &self,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Result<Routed<ChunkStream>, RouteFailure> {
        self.chat_stream_as::<ChatChunk>(request, options).await
    }

    /// [`Router::chat_stream`] through [`Provider::chat_stream_reply`]: an
    /// OpenAI-format upstream's chunks stay the JSON it sent, for a caller
    /// that passes them on as SSE.
    ///
    /// [`Provider::chat_stream_reply`]: gateway_providers::Provider::chat_stream_reply
    pub async fn chat_stream_reply(
        &self,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Result<Routed<ReplyStream>, RouteFailure> {
        self.chat_stream_as::<ChunkReply>(request, options).await
    }

    async fn chat_stream_as<T: StreamAnswer>(
        &self,
        request: &ChatRequest,
        options: &RequestOptions,
    ) -> Result<Routed<ItemStream<T>>, RouteFailure> {
        let count = || tokens::count_chat(self.settings().tokenizer, request);
        self.run(
            &request.model,
            options,
            true,
            count,
            |deployment| async move {
                let request =
                    with_system_prompt(request, deployment.settings.system_prompt.as_deref());
                let mut stream = T::open(&*deployment.provider, &request, &options.call).await?;
                match stream.next().await {
                    Some(Ok(first)) => Ok(Peeked {
                        first,
                        rest: stream,
                    }),
                    Some(Err(error)) => Err(error),
                    None => Err(ProviderError::new(
                        ErrorKind::InvalidResponse,
                        "the stream ended before its first chunk",
                    )),
                }
            },
            commit,
        )
        .await
    }

    /// Embeddings.
    pub async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        options: &RequestOptions,
    ) -> Result<Routed<EmbeddingsResponse>, RouteFailure> {
        let count = || tokens::count_embeddings(self.settings().tokenizer, request);
        self.run(
            &request.model,
            options,
            false,
            count,
            |deployment| async move { deployment.provider.embeddings(request, &options.call).await },
            |response: EmbeddingsResponse, guard| {
                guard.succeed(response.usage.as_ref().map_or(0, |usage| usage.total_tokens));
                response
            },
        )
        .await
    }

    /// Routes a call of the caller's own making with the same picks,
    /// deadlines, retries, fallbacks and cooldowns as [`Router::chat`]:
    /// `call` is called with each deployment tried until one answers `Ok`.
    /// For calls the typed entry points cannot express, such as a native
    /// passthrough (`Provider::anthropic_messages`) that translates on
    /// deployments that cannot take it.
    ///
    /// The answer comes with a [`CallGuard`]: report the call's end (and its
    /// tokens) with it. Pre-call checks use `options.input_tokens`; nothing
    /// is counted when it is unset.
    pub async fn route<'a, T, F, Fut>(
        &'a self,
        model: &str,
        options: &'a RequestOptions,
        call: F,
    ) -> Result<Routed<(T, CallGuard)>, RouteFailure>
    where
        F: Fn(&'a Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>> + 'a,
    {
        self.run(
            model,
            options,
            false,
            || 0,
            call,
            |value, guard| {
                guard.answered(false);
                (value, CallGuard::new(guard))
            },
        )
        .await
    }

    /// [`Router::route`] for a stream: `call` should resolve once the
    /// stream's first event arrived, so that a failure before it retries and
    /// falls back. It runs under the stream (first chunk) timeout, and its
    /// latency is recorded as the time to first token. Keep the
    /// [`CallGuard`] with the stream and finish it when the stream ends.
    pub async fn route_stream<'a, T, F, Fut>(
        &'a self,
        model: &str,
        options: &'a RequestOptions,
        call: F,
    ) -> Result<Routed<(T, CallGuard)>, RouteFailure>
    where
        F: Fn(&'a Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>> + 'a,
    {
        self.run(
            model,
            options,
            true,
            || 0,
            call,
            |value, guard| {
                guard.answered(true);
                (value, CallGuard::new(guard))
            },
        )
        .await
    }

    /// Runs the engine with its table and random source, briefly locked.
    fn with_engine<R>(
        &self,
        f: impl FnOnce(&Engine, &mut StatsTable, &mut dyn Rng) -> R,
    ) -> Option<R> {
        let shared = &*self.shared;
        with_table(&*shared.state, |table| {
            let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
            f(&shared.engine, table, &mut **rng)
        })
    }

    /// The fallback loop: tries the requested group, then its fallbacks
    /// (depth first, each group with its own retries), until one answers.
    #[allow(clippy::too_many_arguments)]
    async fn run<'a, T, U, F, Fut, S>(
        &'a self,
        model: &str,
        options: &'a RequestOptions,
        stream: bool,
        count_tokens: impl FnOnce() -> u64,
        call: F,
        settle: S,
    ) -> Result<Routed<U>, RouteFailure>
    where
        F: Fn(&'a Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>> + 'a,
        S: Fn(T, InFlight) -> U,
    {
        let engine = &self.shared.engine;
        let settings = engine.settings();
        let mut report = RouteReport::default();
        let timeout = options.timeout.or(settings.timeout);
        let input_tokens = settings
            .enable_pre_call_checks
            .then(|| options.input_tokens.unwrap_or_else(count_tokens));
        report.input_tokens = input_tokens;
        let run = Run {
            options,
            input_tokens,
            stream,
            deadline: timeout.map(|timeout| now() + timeout),
            timeout,
        };

        // Pending groups, as a stack: the next to try is last.
        let mut pending: Vec<(GroupId, usize)> = Vec::new();
        let mut last_error = RouterError::UnknownModel(model.to_owned());
        let mut requested = None;
        match engine.group(model) {
            Some(group) => {
                requested = Some(group);
                report.requested_group = Some(engine.group_name(group).clone());
                pending.push((group, 0));
            }
            None if !options.disable_fallbacks => {
                push_groups(engine, &mut pending, &[], &settings.default_fallbacks);
            }
            None => {}
        }
        let mut visited: Vec<(GroupId, usize)> = Vec::new();
        while let Some((group, min_tier)) = pending.pop() {
            if visited.contains(&(group, min_tier)) {
                continue;
            }
            if requested != Some(group) || min_tier > 0 {
                if report.fallbacks >= settings.max_fallbacks {
                    break;
                }
                report.fallbacks += 1;
            }
            visited.push((group, min_tier));
            report.model_group = Some(engine.group_name(group).clone());
            // A group whose deployments are all cooling or at their limit waits
            // for one only when there is nowhere else to go. (Higher tiers need
            // no check: a pick already walks them when lower ones are unavailable.)
            let own_fallbacks = requested == Some(group) && options.fallbacks.is_some();
            let can_fall_back = !options.disable_fallbacks
                && (!pending.is_empty()
                    || (own_fallbacks
                        && options
                            .fallbacks
                            .as_ref()
                            .is_some_and(|list| !list.is_empty()))
                    || (!own_fallbacks
                        && !engine
                            .fallbacks(
                                engine.group_name(group).as_str(),
                                policy::FallbackKind::General,
                            )
                            .is_empty()));
            let (error, tier) = match self
                .run_group(
                    group,
                    min_tier,
                    can_fall_back,
                    &run,
                    &mut report,
                    &call,
                    &settle,
                )
                .await
            {
                Ok(value) => return Ok(Routed { value, report }),
                Err(GroupEnd::Stop(error)) => return Err(RouteFailure { error, report }),
                Err(GroupEnd::Failed { error, tier }) => (error, tier),
            };
            if !options.disable_fallbacks {
                let kind = policy::fallback_kind(&error);
                let configured = match (&options.fallbacks, requested == Some(group)) {
                    (Some(own), true) => own.as_slice(),
                    _ => engine.fallbacks(engine.group_name(group).as_str(), kind),
                };
                // Pushed in reverse: the higher tier of the same group first, then the list in order.
                push_groups(engine, &mut pending, &visited, configured);
                if let Some(tier) = tier {
                    if kind == policy::FallbackKind::General && tier + 1 < engine.tier_count(group)
                    {
                        pending.push((group, tier + 1));
                    }
                }
            }
            last_error = error;
        }
        Err(RouteFailure {
            error: last_error,
            report,
        })
    }

    /// The attempts within one group: pick, call under deadlines, record,
    /// back off and retry, or wait for capacity.
    #[allow(clippy::too_many_arguments)]
    async fn run_group<'a, T, U, F, Fut, S>(
        &'a self,
        group: GroupId,
        min_tier: usize,
        can_fall_back: bool,
        run: &Run<'a>,
        report: &mut RouteReport,
        call: &F,
        settle: &S,
    ) -> Result<U, GroupEnd>
    where
        F: Fn(&'a Arc<Deployment>) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>> + 'a,
        S: Fn(T, InFlight) -> U,
    {
        let engine = &self.shared.engine;
        let settings = engine.settings();
        let mut tried: u128 = 0;
        let mut retries: u32 = 0;
        let mut last_tier = None;
        loop {
            let start = now();
            if let (Some(deadline), Some(timeout)) = (run.deadline, run.timeout) {
                if start >= deadline {
                    return Err(GroupEnd::Stop(RouterError::Timeout(timeout)));
                }
            }
            let request = PickRequest {
                tags: &run.options.tags,
                input_tokens: run.input_tokens,
                stream: run.stream,
                min_tier,
                tried,
            };
            let step = self
                .with_engine(|engine, table, rng| {
                    engine.next_step(table, group, &request, start, rng)
                })
                .unwrap_or_else(|| {
                    Step::GiveUp(RouterError::NoDeployment {
                        group: engine.group_name(group).clone(),
                        reason: "the router state did not answer".to_owned(),
                    })
                });
            let pick: Pick = match step {
                Step::Try(pick) => pick,
                Step::Wait { until, error } => {
                    if !can_fall_back && run.deadline.is_some_and(|deadline| until <= deadline) {
                        report.queued += until.saturating_duration_since(start);
                        tokio::time::sleep_until(until.into()).await;
                        continue;
                    }
                    return Err(GroupEnd::Failed {
                        error,
                        tier: last_tier,
                    });
                }
                Step::GiveUp(error) => {
                    return Err(GroupEnd::Failed {
                        error,
                        tier: last_tier,
                    })
                }
            };
            let deployment = engine.deployment(pick.deployment);
            last_tier = Some(last_tier.map_or(pick.tier, |tier: usize| tier.max(pick.tier)));
            report.attempts += 1;
            report.deployment = Some(deployment.id.clone());
            report.provider = Some(deployment.provider.kind());
            report
                .api_base
                .clone_from(&engine.entry(pick.deployment).api_base);
            let mut guard = InFlight::new(Arc::clone(&self.shared), pick.deployment, start);

            let deadline = attempt_deadline(run, settings, deployment, start);
            let result = match deadline {
                None => call(deployment).await,
                Some((at, which)) => {
                    match tokio::time::timeout_at(at.into(), call(deployment)).await {
                        Ok(result) => result,
                        Err(_) => match which {
                            Deadline::Overall(timeout) => {
                                drop(guard);
                                return Err(GroupEnd::Stop(RouterError::Timeout(timeout)));
                            }
                            Deadline::Deployment(limit) => Err(ProviderError::new(
                                ErrorKind::Timeout,
                                format!(
                                    "deployment `{}` did not answer within {limit:?}",
                                    deployment.id
                                ),
                            )),
                            Deadline::FirstChunk(limit) => Err(ProviderError::new(
                                ErrorKind::Timeout,
                                format!(
                                    "deployment `{}` sent no first chunk within {limit:?}",
                                    deployment.id
                                ),
                            )),
                        },
                    }
                }
            };
            let error = match result {
                Ok(value) => return Ok(settle(value, guard)),
                Err(error) => error,
            };
            guard.fail(&error, 0);
            drop(guard);
            tracing::debug!(
                deployment = %deployment.id,
                kind = %error.kind,
                retry = retries,
                "attempt failed"
            );
            report.errors.push(AttemptError {
                deployment: deployment.id.clone(),
                error: error.clone(),
            });
            tried |= 1u128 << pick.position;

            let policy_retries = policy::policy_retries(&settings.retry_policy, error.kind);
            let allowed = deployment
                .settings
                .num_retries
                .or(policy_retries)
                .or(run.options.num_retries)
                .unwrap_or(settings.num_retries);
            let retryable = match policy::retry(error.kind) {
                Retry::Yes => true,
                Retry::IfOtherDeploymentOrPolicy => {
                    policy_retries.is_some() || engine.group_deployments(group).len() > 1
                }
                Retry::IfPolicy => policy_retries.is_some(),
                Retry::No => false,
            };
            if !retryable || retries >= allowed {
                return Err(GroupEnd::Failed {
                    error: RouterError::Provider(error),
                    tier: last_tier,
                });
            }
            let now = now();
            let request = PickRequest { tried, ..request };
            let wait = self
                .with_engine(|engine, table, rng| {
                    engine.backoff(table, group, pick, &error, retries, &request, now, rng)
                })
                .unwrap_or(settings.retry_after);
            if run.deadline.is_some_and(|deadline| now + wait >= deadline) {
                return Err(GroupEnd::Failed {
                    error: RouterError::Provider(error),
                    tier: last_tier,
                });
            }
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            retries += 1;
            report.retries += 1;
        }
    }
}

/// Pushes `groups` onto the pending stack so that the first is tried first,
/// skipping groups already tried and names that are not groups.
fn push_groups(
    engine: &Engine,
    pending: &mut Vec<(GroupId, usize)>,
    visited: &[(GroupId, usize)],
    groups: &[ModelName],
) {
    for name in groups.iter().rev() {
        match engine.group(name.as_str()) {
            Some(group) if !visited.contains(&(group, 0)) => pending.push((group, 0)),
            Some(_) => {}
            None => tracing::warn!(group = %name, "fallback group is not configured; skipped"),
        }
    }
}

/// The earliest deadline of an attempt, and which one it is: the request's,
/// the deployment's, or (streams) the first chunk's.
fn attempt_deadline(
    run: &Run<'_>,
    settings: &RouterSettings,
    deployment: &Deployment,
    start: Instant,
) -> Option<(Instant, Deadline)> {
    let mut earliest: Option<(Instant, Deadline)> = None;
    let mut consider = |at: Instant, which: Deadline| {
        if earliest.is_none_or(|(current, _)| at < current) {
            earliest = Some((at, which));
        }
    };
    if let Some(limit) = deployment.settings.timeout {
        consider(start + limit, Deadline::Deployment(limit));
    }
    if run.stream {
        if let Some(limit) = deployment
            .settings
            .stream_timeout
            .or(settings.stream_timeout)
        {
            consider(start + limit, Deadline::FirstChunk(limit));
        }
    }
    if let (Some(deadline), Some(timeout)) = (run.deadline, run.timeout) {
        consider(deadline, Deadline::Overall(timeout));
    }
    earliest
}

/// The two forms a non-stream chat answer is asked for in.
trait ChatAnswer: Reported + Sized {
    fn call<'a>(
        provider: &'a dyn Provider,
        request: &'a ChatRequest,
        cx: &'a CallContext,
    ) -> Pin<Box<dyn Future<Output = Result<Self, ProviderError>> + Send + 'a>>;
}

impl ChatAnswer for ChatResponse {
    fn call<'a>(
        provider: &'a dyn Provider,
        request: &'a ChatRequest,
        cx: &'a CallContext,
    ) -> Pin<Box<dyn Future<Output = Result<Self, ProviderError>> + Send + 'a>> {
        provider.chat(request, cx)
    }
}

impl ChatAnswer for ChatReply {
    fn call<'a>(
        provider: &'a dyn Provider,
        request: &'a ChatRequest,
        cx: &'a CallContext,
    ) -> Pin<Box<dyn Future<Output = Result<Self, ProviderError>> + Send + 'a>> {
        provider.chat_reply(request, cx)
    }
}

/// The two forms a chat stream is asked for in.
trait StreamAnswer: Reported + Sized {
    fn open<'a>(
        provider: &'a dyn Provider,
        request: &'a ChatRequest,
        cx: &'a CallContext,
    ) -> Pin<Box<dyn Future<Output = Result<ItemStream<Self>, ProviderError>> + Send + 'a>>;
}

impl StreamAnswer for ChatChunk {
    fn open<'a>(
        provider: &'a dyn Provider,
        request: &'a ChatRequest,
        cx: &'a CallContext,
    ) -> Pin<Box<dyn Future<Output = Result<ItemStream<Self>, ProviderError>> + Send + 'a>> {
        provider.chat_stream(request, cx)
    }
}

impl StreamAnswer for ChunkReply {
    fn open<'a>(
        provider: &'a dyn Provider,
        request: &'a ChatRequest,
        cx: &'a CallContext,
    ) -> Pin<Box<dyn Future<Output = Result<ItemStream<Self>, ProviderError>> + Send + 'a>> {
        provider.chat_stream_reply(request, cx)
    }
}

/// The request with the deployment's system prompt prepended, borrowed
/// unchanged when there is none.
pub fn with_system_prompt<'a>(
    request: &'a ChatRequest,
    system_prompt: Option<&str>,
) -> Cow<'a, ChatRequest> {
    match system_prompt {
        None => Cow::Borrowed(request),
        Some(prompt) => {
            let mut owned = request.clone();
            owned
                .messages
                .insert(0, Message::text(Role::System, prompt));
            Cow::Owned(owned)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests: a panic is the failure report.
mod tests {
    use super::*;
    use gateway_types::MessageContent;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn call_futures_are_send_so_servers_can_spawn_them() {
        let router = Router::new(RouterSettings::default(), Vec::new()).unwrap();
        let chat = ChatRequest::default();
        let embeddings = EmbeddingsRequest {
            model: String::new(),
            input: serde_json::Value::Null,
            encoding_format: None,
            dimensions: None,
            user: None,
            extra: Default::default(),
        };
        let options = RequestOptions::default();
        assert_send(&router.chat(&chat, &options));
        assert_send(&router.chat_reply(&chat, &options));
        assert_send(&router.chat_stream(&chat, &options));
        assert_send(&router.chat_stream_reply(&chat, &options));
        assert_send(&router.embeddings(&embeddings, &options));
        fn assert_sync<T: Send + Sync>(_: &T) {}
        assert_sync(&router);
    }

    #[test]
    fn system_prompt_is_prepended_only_when_set() {
        let request = ChatRequest {
            messages: vec![Message::text(Role::User, "hi")].into(),
            ..ChatRequest::default()
        };
        assert!(matches!(
            with_system_prompt(&request, None),
            Cow::Borrowed(_)
        ));
        let with = with_system_prompt(&request, Some("be brief"));
        assert_eq!(with.messages.len(), 2);
        assert_eq!(with.messages[0].role, Role::System);
        assert_eq!(
            with.messages[0].content,
            Some(MessageContent::Text("be brief".to_owned()))
        );
    }
}
