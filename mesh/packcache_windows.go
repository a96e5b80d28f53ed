package mesh

import (
	"errors"
	"os"
)

// errNoFifo: Windows has no FIFOs; the pack cache is off there (see inheritsPipes).
var errNoFifo = errors.New("mesh: pack cache: no FIFOs on Windows")

func mkfifo(path string) error { return errNoFifo }

func openFifo(path string) (*os.File, error) { return nil, errNoFifo }
