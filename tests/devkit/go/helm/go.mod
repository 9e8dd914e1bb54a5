// Builds the helm CLI for the chart tests. Never published.
module jobqueue.invalid/helmbin

go 1.26.0

require helm.sh/helm/v4 v4.3.2 // indirect
