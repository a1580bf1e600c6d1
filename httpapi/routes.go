package httpapi

import "net/http"

// routes registers every route, one per line.
func (s *Server) routes() {
	r := s.router
	r.NotFoundHandler = s.handle(s.notFound)
	r.MethodNotAllowedHandler = s.handle(s.methodNotAllowed)

	// Intake (the upstream identity system; admin token). First: the
	// router tries the routes in order, and this one takes the most calls.
	r.Handle("/{customerId}/webhooks/events", s.admin(s.intakeEvents)).Methods(http.MethodPost)

	r.Handle("/healthz", s.handle(s.healthz)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/readyz", s.handle(s.readyz)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/openapi.json", s.handle(s.openAPI)).Methods(http.MethodGet, http.MethodHead)
	if s.Metrics != nil {
		r.Handle("/metrics", s.Metrics).Methods(http.MethodGet, http.MethodHead)
	}
	if s.Console != nil {
		r.Handle("/", http.RedirectHandler("/console/", http.StatusFound)).Methods(http.MethodGet, http.MethodHead)
		r.Handle("/console", http.RedirectHandler("/console/", http.StatusMovedPermanently)).Methods(http.MethodGet, http.MethodHead)
		r.PathPrefix("/console/").Handler(http.StripPrefix("/console/", s.Console)).Methods(http.MethodGet, http.MethodHead)
	}

	// Admin API (operator; admin token).
	r.Handle("/admin/customers/{customerId}/clients", s.admin(s.createClient)).Methods(http.MethodPost)
	r.Handle("/admin/customers/{customerId}/clients", s.admin(s.listClients)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/admin/customers/{customerId}/clients/{clientId}", s.admin(s.revokeClient)).Methods(http.MethodDelete)
	r.Handle("/admin/customers/{customerId}/keys/rotate", s.admin(s.rotateKeys)).Methods(http.MethodPost)
	r.Handle("/admin/customers/{customerId}/subscriptions/{subscriptionId}/replay", s.admin(s.replayLines)).Methods(http.MethodPost)
	r.Handle("/admin/backup", s.adminStream(s.backup)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/admin/cluster", s.admin(s.cluster)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/debug/pprof", http.RedirectHandler("/debug/pprof/", http.StatusMovedPermanently)).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/debug/pprof/").Handler(s.adminStream(s.profile)).Methods(http.MethodGet, http.MethodHead, http.MethodPost)

	// Tokens and keys.
	r.Handle("/{customerId}/login/token", s.handle(s.issueToken)).Methods(http.MethodPost)
	r.Handle("/{customerId}/login/jwk", s.handle(s.jwks)).Methods(http.MethodGet, http.MethodHead)

	// Subscriptions.
	r.Handle("/{customerId}/webhooks/subscriptions", s.customer(s.createSubscription)).Methods(http.MethodPost)
	r.Handle("/{customerId}/webhooks/subscriptions", s.customer(s.listSubscriptions)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}", s.customer(s.getSubscription)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}", s.customer(s.patchSubscription)).Methods(http.MethodPatch)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}", s.customer(s.deleteSubscription)).Methods(http.MethodDelete)

	// Event store.
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events", s.customer(s.listEvents)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events/redeliver", s.customer(s.redeliverAll)).Methods(http.MethodPost)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events/redeliver/{recoveryId}", s.customer(s.getRecovery)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events/redeliver/{recoveryId}", s.customer(s.cancelRecovery)).Methods(http.MethodDelete)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events/{eventId:"+uuidPattern+"}", s.customer(s.getEvent)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events/{eventId:"+uuidPattern+"}/history", s.customer(s.eventHistory)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events/{eventId:"+uuidPattern+"}/attempts", s.customer(s.eventAttempts)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events/{eventId:"+uuidPattern+"}/redeliver", s.customer(s.redeliverEvent)).Methods(http.MethodPost)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/test", s.customer(s.testNotification)).Methods(http.MethodPost)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/summary", s.customer(s.summary)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/summary/timeline", s.customer(s.timeline)).Methods(http.MethodGet, http.MethodHead)

	// Bulk exports of failed events, under both path forms (SPEC section 8).
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/exports", s.customer(s.createExport)).Methods(http.MethodPost)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/exports", s.customer(s.listExports)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/exports/{exportId}", s.customer(s.getExport)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/exports/{exportId}", s.customer(s.cancelExport)).Methods(http.MethodDelete)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/exports/{exportId}/download", s.customerStream(s.downloadExport)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/exports/{exportId}/replay", s.customer(s.replayExport)).Methods(http.MethodPost)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events/exports", s.customer(s.createExport)).Methods(http.MethodPost)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events/exports", s.customer(s.listExports)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events/exports/{exportId}", s.customer(s.getExport)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events/exports/{exportId}", s.customer(s.cancelExport)).Methods(http.MethodDelete)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events/exports/{exportId}/download", s.customerStream(s.downloadExport)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/{customerId}/webhooks/subscriptions/{subscriptionId}/events/exports/{exportId}/replay", s.customer(s.replayExport)).Methods(http.MethodPost)
}
