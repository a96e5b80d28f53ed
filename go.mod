module github.com/gitfleet/gitfleet

go 1.26.8

require (
	github.com/magiconair/properties v1.18.12
	github.com/pires/go-proxyproto v0.15.0
	go.etcd.io/bbolt v1.5.0
	golang.org/x/crypto v0.58.0
	golang.org/x/sys v0.49.0
)

require github.com/stretchr/testify v1.12.1 // indirect
