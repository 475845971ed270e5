//! A blocking wrapper for callers without an async runtime.
//!
//! It owns a small multi-thread tokio runtime (one worker), so pooled connections stay
//! serviced between calls and idle sockets expire on time. It must not be used from inside
//! an async runtime: that is reported as an error, not a panic.

use std::sync::Arc;

use crate::error::Error;
use crate::openai::{ChatCompletion, ChatCompletionChunk, ChatCompletionRequest};
use crate::stream::{Chunk, StreamItem};
use crate::transport::ClientStats;
use crate::types::{
    ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, EmbeddingsRequest, EmbeddingsResponse,
    GenerateRequest, GenerateResponse, ListResponse, ProgressResponse, PsResponse, PullRequest,
    ResponseSummary, ShowRequest, ShowResponse,
};
use crate::{ClientBuilder, Config};

/// A blocking [`crate::Client`]: the same methods, returning results directly.
#[derive(Clone, Debug)]
pub struct Client {
    inner: crate::Client,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Client {
    /// Builds the async client from `builder` and a runtime for it, then runs
    /// [`crate::Client::verify`] unless `verify_on_init(false)`.
    pub fn connect(builder: ClientBuilder) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ollama-client-blocking")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::other(
                    "could not start the blocking client's runtime",
                    Some(Box::new(e)),
                )
            })?;
        let client = Self {
            inner: builder.build()?,
            runtime: Arc::new(runtime),
        };
        if client.inner.config().verify_on_init {
            client.verify()?;
        }
        Ok(client)
    }

    fn run<F: Future>(&self, f: F) -> Result<F::Output, Error> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::other(
                "ollama_client::blocking::Client was called from inside an async runtime; use ollama_client::Client there",
                None,
            ));
        }
        Ok(self.runtime.block_on(f))
    }

    /// Runs `f`, which opens a stream, and wraps that stream for blocking iteration.
    fn run_stream<T, F>(&self, f: F) -> Result<ResponseStream<T>, Error>
    where
        F: Future<Output = Result<crate::ResponseStream<T>, Error>>,
    {
        let inner = self.run(f)??;
        Ok(ResponseStream {
            inner,
            client: self.clone(),
            failed: false,
        })
    }

    /// The async client inside (shares limits and counters with this one).
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// See [`crate::Client::config`].
    pub fn config(&self) -> &Config {
        self.inner.config()
    }

    /// See [`crate::Client::stats`].
    pub fn stats(&self) -> ClientStats {
        self.inner.stats()
    }

    /// See [`crate::Client::generate`].
    pub fn generate(&self, req: GenerateRequest) -> Result<GenerateResponse, Error> {
        self.run(self.inner.generate(req))?
    }

    /// See [`crate::Client::generate_stream`].
    pub fn generate_stream(
        &self,
        req: GenerateRequest,
    ) -> Result<ResponseStream<GenerateResponse>, Error> {
        self.run_stream(self.inner.generate_stream(req))
    }

    /// See [`crate::Client::chat`].
    pub fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        self.run(self.inner.chat(req))?
    }

    /// See [`crate::Client::chat_stream`].
    pub fn chat_stream(&self, req: ChatRequest) -> Result<ResponseStream<ChatResponse>, Error> {
        self.run_stream(self.inner.chat_stream(req))
    }

    /// See [`crate::Client::generate_summary`].
    pub fn generate_summary(&self, req: GenerateRequest) -> Result<ResponseSummary, Error> {
        self.run(self.inner.generate_summary(req))?
    }

    /// See [`crate::Client::generate_stream_summary`].
    pub fn generate_stream_summary(
        &self,
        req: GenerateRequest,
    ) -> Result<ResponseStream<ResponseSummary>, Error> {
        self.run_stream(self.inner.generate_stream_summary(req))
    }

    /// See [`crate::Client::chat_summary`].
    pub fn chat_summary(&self, req: ChatRequest) -> Result<ResponseSummary, Error> {
        self.run(self.inner.chat_summary(req))?
    }

    /// See [`crate::Client::chat_stream_summary`].
    pub fn chat_stream_summary(
        &self,
        req: ChatRequest,
    ) -> Result<ResponseStream<ResponseSummary>, Error> {
        self.run_stream(self.inner.chat_stream_summary(req))
    }

    /// See [`crate::Client::embed`].
    pub fn embed(&self, req: EmbedRequest) -> Result<EmbedResponse, Error> {
        self.run(self.inner.embed(req))?
    }

    /// See [`crate::Client::embeddings`].
    pub fn embeddings(&self, req: EmbeddingsRequest) -> Result<EmbeddingsResponse, Error> {
        self.run(self.inner.embeddings(req))?
    }

    /// See [`crate::Client::list_models`].
    pub fn list_models(&self) -> Result<ListResponse, Error> {
        self.run(self.inner.list_models())?
    }

    /// See [`crate::Client::ps`].
    pub fn ps(&self) -> Result<PsResponse, Error> {
        self.run(self.inner.ps())?
    }

    /// See [`crate::Client::show`].
    pub fn show(&self, req: ShowRequest) -> Result<ShowResponse, Error> {
        self.run(self.inner.show(req))?
    }

    /// See [`crate::Client::version`].
    pub fn version(&self) -> Result<String, Error> {
        self.run(self.inner.version())?
    }

    /// See [`crate::Client::pull`].
    pub fn pull(&self, req: PullRequest) -> Result<ResponseStream<ProgressResponse>, Error> {
        self.run_stream(self.inner.pull(req))
    }

    /// See [`crate::Client::copy`].
    pub fn copy(&self, source: &str, destination: &str) -> Result<(), Error> {
        self.run(self.inner.copy(source, destination))?
    }

    /// See [`crate::Client::delete`].
    pub fn delete(&self, model: &str) -> Result<(), Error> {
        self.run(self.inner.delete(model))?
    }

    /// See [`crate::Client::health`].
    pub fn health(&self) -> Result<(), Error> {
        self.run(self.inner.health())?
    }

    /// See [`crate::Client::verify`].
    pub fn verify(&self) -> Result<(), Error> {
        self.run(self.inner.verify())?
    }

    /// See [`crate::Client::openai_chat`].
    pub fn openai_chat(&self, req: ChatCompletionRequest) -> Result<ChatCompletion, Error> {
        self.run(self.inner.openai_chat(req))?
    }

    /// See [`crate::Client::openai_chat_stream`].
    pub fn openai_chat_stream(
        &self,
        req: ChatCompletionRequest,
    ) -> Result<ResponseStream<ChatCompletionChunk>, Error> {
        self.run_stream(self.inner.openai_chat_stream(req))
    }
}

/// A blocking stream: an `Iterator` of `Result<Chunk<T>, Error>`.
#[derive(Debug)]
pub struct ResponseStream<T> {
    inner: crate::ResponseStream<T>,
    client: Client,
    /// Set after a runtime misuse error, so iteration ends instead of repeating it.
    failed: bool,
}

impl<T: StreamItem> Iterator for ResponseStream<T> {
    type Item = Result<Chunk<T>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.client.run(self.inner.next()) {
            Ok(item) => item,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
