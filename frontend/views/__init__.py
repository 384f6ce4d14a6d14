"""Console views: parse the form, call the service with `actor=request.principal`, redirect
with a message. Every org page is wrapped in `frontend.access.org_view`."""
