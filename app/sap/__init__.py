"""Everything that speaks to SAP S/4HANA Cloud lives in this package."""
