package mesh_test

func runSidecarHelper() int { return 2 }
