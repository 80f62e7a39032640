# syntax=docker/dockerfile:1
# One image, every role: docker run -v ./config:/config postal postald worker
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# cgo: postald loads libcrypto at run time for DKIM signing (daemon/libcrypto).
RUN CGO_ENABLED=1 go build -trimpath \
    -ldflags "-s -w -X github.com/postalgo/postal/daemon.Version=${VERSION} -X github.com/postalgo/postal/ctl.Version=${VERSION}" \
    -o /out/ ./cmd/postald ./cmd/postalctl

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/postal --create-home postal
COPY --from=build /out/postald /out/postalctl /usr/local/bin/
# As Postal's image: config and signing.key in /config; WAIT_FOR_TARGETS and
# WAIT_FOR_TIMEOUT are honoured by postald itself.
ENV POSTAL_CONFIG_FILE_PATH=/config/postal.yml
VOLUME ["/config"]
USER postal
EXPOSE 25 5000 9090 9091
ENTRYPOINT ["postald"]
CMD ["--role", "all"]
