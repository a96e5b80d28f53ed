package sshservetest_test

import (
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyMain(m) }
