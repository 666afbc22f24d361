//! Entry receipts: when the server received each entry it accepted.

use sync_core::Timestamp;
use sync_core::clocks::Receipts;

use super::{StorageError, StorageTx, on_pool, on_tx, rows_per_statement};

impl StorageTx {
    /// Records the receipt of each of `doc_id`'s `entries`, written by the
    /// write whose last change is numbered `seq`; an entry already recorded
    /// keeps its first receipt.
    pub async fn record_receipts(
        &mut self,
        doc_id: &str,
        entries: &[(String, Timestamp)],
        seq: i64,
    ) -> Result<(), StorageError> {
        for chunk in entries.chunks(rows_per_statement(4)) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${}, ${}, ${})", 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4))
                .collect();
            let sql = format!(
                "INSERT INTO entry_receipts (doc_id, entry_id, received_at, seq) VALUES {} ON CONFLICT DO NOTHING",
                values.join(", ")
            );
            on_tx!(self, |conn| {
                let mut q = sqlx::query(&sql);
                for (entry, at) in chunk {
                    q = q.bind(doc_id).bind(entry).bind(at.millis()).bind(seq);
                }
                q.execute(&mut *conn).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(())
    }
}

impl super::Documents<'_> {
    /// The recorded receipts of `doc_id`'s entries.
    pub async fn entry_receipts(&self, doc_id: &str) -> Result<Receipts, StorageError> {
        Ok(self.receipts_after(doc_id, i64::MIN).await?.into_iter().collect())
    }

    /// The receipts of `doc_id`'s entries recorded by writes after `seq`
    /// (what another tier that has heard up to `seq` may lack), by entry id.
    pub async fn receipts_after(&self, doc_id: &str, seq: i64) -> Result<Vec<(String, Timestamp)>, StorageError> {
        let rows: Vec<(String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT entry_id, received_at FROM entry_receipts WHERE doc_id = $1 AND seq > $2 ORDER BY entry_id",
            )
            .bind(doc_id)
            .bind(seq)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, at)| (id, Timestamp::from_millis(at)))
            .collect())
    }
}

impl super::Documents<'_> {
    /// Imported history (the demo county's seed): records each of `doc_id`'s
    /// `entries` as received when it was stamped, replacing the receipts its
    /// delivery recorded, and writes the petition row again with `summary`
    /// (computed on them), in one transaction. Never for what clients send.
    pub async fn import_receipts(
        &self,
        doc_id: &str,
        entries: &[(String, Timestamp)],
        summary: Option<&sync_core::petition::PetitionSummary>,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin().await?;
        on_tx!(tx, |conn| {
            sqlx::query("DELETE FROM entry_receipts WHERE doc_id = $1")
                .bind(doc_id)
                .execute(&mut *conn)
                .await
                .map(|r| r.rows_affected())
        })?;
        let position = tx.document_position(doc_id).await?.map_or(0, |(_, p)| p);
        tx.record_receipts(doc_id, entries, position).await?;
        if let Some(summary) = summary {
            tx.upsert_petition(doc_id, summary, position).await?;
        }
        tx.commit().await
    }
}
