//! [`ServiceInside`]: any tower service with every call made inside a set,
//! such as a client's connector (features `tokio` and `tower`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use crate::handle::set::NsSet;

/// The error of a [`ServiceInside`]: nsguard's (the call could not be run
/// inside), or the inner service's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A [`tower_service::Service`] whose every call runs inside a set: the
/// inner service's `call`, and every poll of the future it returns, run on
/// workers of the global executor inside the set's namespaces
/// ([`NsSet::run_future`]). Wrap a client's connector in it and every
/// connection the client dials is made inside: name resolution (tokio runs
/// it on a blocking thread that lives in the set), the socket and its
/// connect. What the connector returns is used from the caller's runtime,
/// as any socket made inside can be.
///
/// `poll_ready` is the inner service's, on the caller's thread.
///
/// # Examples
///
/// hyper's client, dialing inside a network namespace:
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use hyper_util::client::legacy::{connect::HttpConnector, Client};
/// use hyper_util::rt::TokioExecutor;
/// use nsguard::{Namespace, NsSet, ServiceInside};
///
/// let set = NsSet::from(Namespace::named("blue")?);
/// let client = Client::builder(TokioExecutor::new())
///     .build::<_, http_body_util::Empty<bytes::Bytes>>(ServiceInside::new(set, HttpConnector::new()));
/// let response = client.get("http://10.0.0.2/".parse()?).await?;
/// # drop(response); Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(all(feature = "tokio", feature = "tower"))))]
pub struct ServiceInside<S> {
    set: Arc<NsSet>,
    inner: S,
}

impl<S> ServiceInside<S> {
    /// `inner`, with every call made inside `set`.
    pub fn new(set: impl Into<Arc<NsSet>>, inner: S) -> ServiceInside<S> {
        ServiceInside {
            set: set.into(),
            inner,
        }
    }

    /// The set calls are made in.
    pub fn set(&self) -> &NsSet {
        &self.set
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone> Clone for ServiceInside<S> {
    fn clone(&self) -> Self {
        ServiceInside {
            set: Arc::clone(&self.set),
            inner: self.inner.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ServiceInside<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceInside")
            .field("set", &self.set)
            .field("inner", &self.inner)
            .finish()
    }
}

impl<S, Request> Service<Request> for ServiceInside<S>
where
    S: Service<Request> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    Request: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The service that was polled ready makes the call; the clone stays
        // for the next one (tower's rule for services that are cloned).
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let set = Arc::clone(&self.set);
        Box::pin(async move {
            let made = set.run_future(async move { ready.call(request).await.map_err(Into::into) });
            match made.await {
                Ok(called) => called,
                Err(err) => Err(Box::new(err) as BoxError),
            }
        })
    }
}
