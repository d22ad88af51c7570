build/obj/error.o: src/error.c src/error.h src/util.h
src/error.h:
src/util.h:
