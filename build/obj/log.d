build/obj/log.o: src/log.c src/log.h src/error.h src/util.h
src/log.h:
src/error.h:
src/util.h:
