//! Village directories for the API: which document holds each village's households.

use super::{Storage, StorageError, on_pool, placeholders};

impl Storage {
    /// The directory documents of `villages`, oldest first: `(village, doc_id)`.
    pub async fn directory_docs(&self, villages: &[String]) -> Result<Vec<(String, String)>, StorageError> {
        if villages.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT a.subject, d.doc_id FROM documents d JOIN doc_access a ON a.doc_id = d.doc_id \
             WHERE d.kind = 'directory' AND a.kind = 'unit' AND a.subject IN ({}) ORDER BY d.created_at, d.doc_id",
            placeholders(1, villages.len())
        );
        let rows = on_pool!(self, |pool| {
            let mut q = sqlx::query_as(&sql);
            for v in villages {
                q = q.bind(v);
            }
            q.fetch_all(pool).await
        })?;
        Ok(rows)
    }
}
