"""The estate's keys: what they are and where they live (sources), encrypted
backups of them (archive), the recovery secret split among custodians (shares),
and where backups are kept (store). docs/internals.md, "Keys"."""
