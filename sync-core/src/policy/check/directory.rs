//! Village directories: new households and who may record them.

use super::*;

impl Inspector<'_, '_> {
    pub(super) fn village(&self) -> Result<UnitId, Refusal> {
        match self.facts {
            DocFacts::Directory { village, .. } => Ok(village.clone()),
            _ => Err(self.refuse(Rule::Malformed, "not a directory")),
        }
    }

    pub(super) fn check_new_household(&mut self, obj: &ObjId) -> Result<(), Refusal> {
        let by = crate::doc::am::opt_str(&*self.doc, obj, "updated_by").map_err(|e| self.malformed("household", e))?;
        match by {
            Some(by) if by == self.me().as_str() => Ok(()),
            Some(by) => Err(self.refuse(
                Rule::ForgedAuthor,
                format!("updated_by says {by}, but the change comes from {}", self.me()),
            )),
            None => Err(self.refuse(Rule::Malformed, "a new household records updated_by")),
        }
    }
}
