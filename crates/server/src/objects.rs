//! Object storage for uploads: the data directory's `objects/` folder by
//! default, or an S3-compatible store (Cloudflare R2, MinIO, AWS S3) or Google
//! Cloud Storage named by URL, with credentials from the usual environment
//! variables (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, `GOOGLE_SERVICE_ACCOUNT`, ...).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use object_store::ObjectStore;

/// Opens the object store named by `url`, or the local folder when `None`.
pub fn open(url: Option<&str>, local: &Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
    match url {
        None => {
            std::fs::create_dir_all(local).with_context(|| format!("cannot create {}", local.display()))?;
            Ok(Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(local)
                    .context("cannot open the objects folder")?,
            ))
        }
        Some(u) if u.starts_with("s3://") => Ok(Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(u)
                .build()
                .context("cannot configure the S3 object store")?,
        )),
        Some(u) if u.starts_with("gs://") => Ok(Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(u)
                .build()
                .context("cannot configure the GCS object store")?,
        )),
        Some(u) => anyhow::bail!(
            "unsupported object store URL scheme in `{}`: use s3://bucket (S3, R2, MinIO) or gs://bucket",
            u.split("://").next().unwrap_or("")
        ),
    }
}
