//! Notices: receipts a household marks on its own copy.

use super::*;

impl Inspector<'_, '_> {
    pub(super) fn check_receipt(&self, key: &str, action: &OpType) -> Result<(), Refusal> {
        let DocFacts::Notice { unit, audience } = self.facts else {
            return Err(self.refuse(Rule::Malformed, "not a notice"));
        };
        let (household, kind, user) = parse_receipt_key(key).map_err(|e| self.malformed("receipt", e))?;
        self.check_by(&user, "the receipt")?;
        let OpType::Put(ScalarValue::Str(stamp)) = action else {
            return Err(self.refuse(Rule::Malformed, "a receipt's value is its stamp"));
        };
        let at: Hlc = stamp.parse().map_err(|e| self.malformed("receipt", e))?;
        self.check_stamp(&at, &mut BTreeSet::new())?;
        let p = self.ctx.principal;
        let own_household = p.household.as_ref() == Some(&household);
        let server_delivery = p.is_system() && kind == ReceiptKind::Delivered;
        let officer = self.staff_over(OFFICERS, unit);
        if !own_household && !server_delivery && !officer {
            return Err(self.refuse(
                Rule::NotMember,
                format!("receipts for household {household} are written by its own people"),
            ));
        }
        if !audience.households.is_empty()
            && !audience.households.contains(&household)
            && audience.units.is_empty()
            && audience.rooms.is_empty()
        {
            return Err(self.refuse(
                Rule::Malformed,
                format!("household {household} is not in the notice's audience"),
            ));
        }
        Ok(())
    }
}
