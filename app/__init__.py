"""hmis-sap-bridge: keeps HMIS in step with SAP S/4HANA Cloud."""
