build/obj/main.o: src/main.c
