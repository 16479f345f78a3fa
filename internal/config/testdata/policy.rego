package regate.network

decision := {"allow": true, "reason": "test fixture"}
